"""Two minions of our own (ids are CMDB hostnames) on the shared master; the tests give them ``cpshop``.

Shared by the package's modules: a minion restarted under the same id would
come with a new key, which the master (rightly) refuses.

Both minions run on this machine, so a path in the set is one file both
write (unless it holds ``{hostname}``): the content of such files does not
depend on the host, which keeps their writes identical.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from tests.support import saltenv
from tests.support.cli_output import last_document as runner_data  # noqa: F401 - the confpush tests import it from here
from tests.support.hosts import host_record

CP_MINIONS = ("c1.confpush.test", "c2.confpush.test")
PLACES = {"c1.confpush.test": ("bj-idc1", "telecom"), "c2.confpush.test": ("sh-idc1", "unicom")}
APP = "cpshop"
ENV = "test"


@pytest.fixture(scope="package")
def cp_dir():
    path = tempfile.mkdtemp(prefix="cpi-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def cp_record(name, idc, line, env, apps):
    """A CMDB record of a test minion on this machine."""
    return host_record(
        name, ip="127.0.0.1", lines={line: "127.0.0.1"}, roles=["web"], idc=idc, env=env, apps=apps
    )


def start_push(master, app, env, *args):
    """``salt-run confpush.push`` as a process of its own (a test may kill it); stdout is piped."""
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "salt-run"),
        f"--config-dir={master.config_dir}",
        "--out=json",
        "confpush.push",
        f"app={app}",
        f"env={env}",
        *args,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


@pytest.fixture(scope="package")
def cp_hosts(cmdb_store):
    records = [cp_record(name, *PLACES[name], ENV, {}) for name in CP_MINIONS]
    repo.write(cmdb_store, "tests", records, rules=Rules.from_config(config.load({})))
    yield records
    repo.remove(cmdb_store, "tests", list(CP_MINIONS), purge=True)


SECRET = "s3cr3t-Value-7f1c"


@pytest.fixture(scope="package")
def cp_minions(salt_master, cp_hosts, cp_dir):
    # The minions' own secret store: Salt's sdb ``yaml`` driver over a file only they read.
    secrets = os.path.join(cp_dir, "secrets.yaml")
    with open(secrets, "w", encoding="utf-8") as fh:
        fh.write(f"db_password: {SECRET}\n")
    overrides = saltenv.minion_overrides({"cpsecrets": {"driver": "yaml", "files": [secrets]}})
    with saltenv.started_minions(salt_master, CP_MINIONS, overrides) as factories:
        yield list(factories.values())
