"""Three minions of our own (ids are CMDB hostnames) on the shared master, and the app's artifacts."""

import os
import shutil
import tempfile

import pytest

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from tests.functional.deploy import deploy_appkit as kit

DEPLOY_MINIONS = ("d1.deploy.test", "d2.deploy.test", "d3.deploy.test")
PLACES = {
    "d1.deploy.test": ("bj-idc1", "telecom"),
    "d2.deploy.test": ("sh-idc1", "unicom"),
    "d3.deploy.test": ("bj-idc2", "telecom"),
}
APP = "dshop"
ENV = "test"


@pytest.fixture(scope="module")
def deploy_dir():
    path = tempfile.mkdtemp(prefix="sodi-", dir="/tmp")
    yield path
    kit.stop_apps(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def artifacts(deploy_dir):
    path = os.path.join(deploy_dir, "www")
    os.makedirs(path)
    with kit.ArtifactServer(path) as server:
        yield server


@pytest.fixture(scope="module")
def deploy_hosts(deploy_dir, cmdb_store):
    """CMDB records for the deploy minions: each its own folder and port on this machine."""
    records = {}
    for name in DEPLOY_MINIONS:
        idc, line = PLACES[name]
        settings = kit.app_settings(os.path.join(deploy_dir, "hosts", name), kit.free_port(), keep=2)
        records[name] = {
            "hostname": name,
            "ip": "127.0.0.1",
            "lines": {line: "127.0.0.1"},
            "roles": ["web"],
            "platform": "Debian-12",
            "machine_type": "vm",
            "idc": idc,
            "env": ENV,
            "status": "online",
            "owner": "web-team",
            "apps": {APP: settings},
        }
    repo.write(cmdb_store, "tests", list(records.values()), rules=Rules.from_config(config.load({})))
    yield records
    repo.remove(cmdb_store, "tests", list(records), purge=True)


@pytest.fixture(scope="module")
def deploy_minions(salt_master, salt_cli, deploy_hosts):
    from tests.support import saltenv

    factories = {
        name: salt_master.salt_minion_daemon(name, overrides=saltenv.minion_overrides())
        for name in DEPLOY_MINIONS
    }
    started = []
    try:
        for factory in factories.values():
            factory.start(start_timeout=120)
            started.append(factory)
        for name in DEPLOY_MINIONS:
            ret = salt_cli.run("saltutil.sync_modules", minion_tgt=name)
            assert ret.returncode == 0, ret
            assert "modules.saltops_release" in ret.data, ret.data
        yield factories
    finally:
        for factory in reversed(started):
            factory.terminate()
