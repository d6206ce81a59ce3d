"""Task tests: a store on SQLite and MariaDB (shared per session, emptied per test) with CMDB hosts."""

import pytest

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from saltops.store.schema import audit_log
from saltops.tasks import settings as task_settings
from saltops.tasks.schema import definitions, runs
from tests.support.hosts import host_record


def host(name, role="web", env="prod"):
    return host_record(name, lines={"telecom": "10.0.0.1"}, roles=[role], env=env, apps={})


HOSTS = [host("web1.example.com"), host("web2.example.com"), host("db1.example.com", role="db"),
         host("web9.example.com", env="staging")]


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def store(request, backend_stores):
    s = backend_stores(request.param, "tasks")
    with s.begin() as conn:
        conn.execute(runs.delete())
        conn.execute(definitions.delete())
        conn.execute(audit_log.delete().where(audit_log.c.object_type == "task"))
    if not getattr(s, "_task_hosts", False):
        repo.write(s, "tester", HOSTS, rules=Rules.from_config(config.load({})), mode="upsert")
        s._task_hosts = True
    return s


@pytest.fixture
def settings():
    return task_settings.load({"tasks": {"misfire_grace": 60, "refresh": 1, "heartbeat": 1, "stale_after": 10}})


class Functions:
    """A function checker with a fixed table: the one the runner builds asks Salt's loaders and minions."""

    TABLE = {("runner", "alarm.list"): ["state", "severity"], ("runner", "test.sleep"): None,
             ("minion", "test.ping"): [], ("minion", "cmd.script"): ["source", "args"],
             ("minion", "state.apply"): None}

    def __init__(self):
        self.calls = []

    def __call__(self, kind, fun, args, kwargs, hostnames):
        self.calls.append((kind, fun, tuple(hostnames or ())))
        if (kind, fun) not in self.TABLE:
            return [f"unknown {kind} function {fun!r}"]
        params = self.TABLE[kind, fun]
        if params is None:
            return []
        return [f"{fun} takes no argument {k}" for k in kwargs if k not in params]


@pytest.fixture
def functions():
    return Functions()
