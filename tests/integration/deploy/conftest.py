"""Three minions of our own (ids are CMDB hostnames) on the shared master, and the app's artifacts."""

import os
import shutil
import tempfile

import pytest

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from tests.functional.deploy import deploy_appkit as kit
from tests.support import app_minions

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
    records = app_minions.app_host_records(deploy_dir, PLACES, APP, ENV, keep=2)
    repo.write(cmdb_store, "tests", list(records.values()), rules=Rules.from_config(config.load({})))
    yield records
    repo.remove(cmdb_store, "tests", list(records), purge=True)


@pytest.fixture(scope="module")
def hooks_pillar(salt_master):
    """The app hosts' hooks (saltops:deploy:hooks) in the master's scratch pillar tree, beside ours."""
    with app_minions.hooks_pillar(salt_master):
        yield


@pytest.fixture(scope="module")
def deploy_minions(salt_master, salt_cli, deploy_hosts, hooks_pillar):
    with app_minions.started_minions(salt_master, DEPLOY_MINIONS, salt_cli) as factories:
        yield factories
