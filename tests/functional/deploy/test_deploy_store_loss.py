"""The database lost in the middle of a deploy: what the minions did is kept and told.

The engine drives the real minion module (through Salt's loader) on a private
MariaDB server (tests/support/mariadb_instance.py) that the tests stop while a
batch is switching.  The daemon version (salt-run, a real master and minions)
is in tests/integration/deploy/test_deploy_faults.py.
"""

import os
import threading

import deploy_appkit as kit
import pytest

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from saltops.deploy import api as deploy_api
from saltops.deploy import config as dconfig
from saltops.deploy import history
from saltops.deploy.journal import Journal
from saltops.deploy.schema import runs
from saltops.store.engine import Store
from tests.support.mariadb_instance import MariaDBInstance, available

HOSTS = ("s1.deploy.test", "s2.deploy.test", "s3.deploy.test")


@pytest.fixture(scope="module")
def mariadb():
    problem = available()
    if problem:
        pytest.fail(problem)
    with MariaDBInstance() as db:
        yield db


@pytest.fixture
def env(mariadb, workdir, artifacts, caller, request, tmp_path):
    if not mariadb.running():
        mariadb.start()
    name = f"loss_{request.node.name[-20:]}".replace("[", "_").replace("]", "_").replace("-", "_")
    store = Store(mariadb.url(name))
    store.migrate()
    base = os.path.join(workdir, "loss", request.node.name[:40])
    records = [
        {
            "hostname": host,
            "ip": "10.0.0.1",
            "lines": {"telecom": "10.0.0.1"},
            "roles": ["web"],
            "platform": "Debian-12",
            "machine_type": "vm",
            "idc": ("bj-idc1", "sh-idc1", "bj-idc2")[i],
            "env": "test",
            "status": "online",
            "owner": "web-team",
            "apps": {"shop": kit.app_settings(os.path.join(base, host), kit.free_port(), keep=2)},
        }
        for i, host in enumerate(HOSTS)
    ]
    repo.write(store, "tester", records, rules=Rules.from_config(config.load({})))

    class Env:
        pass

    e = Env()
    e.db, e.store, e.records = mariadb, store, {r["hostname"]: r for r in records}
    e.journal_dir = str(tmp_path / "journal")
    e.executor = kit.CallerExecutor(caller)
    e.progress = []

    def dconf(store_wait):
        return dconfig.load(
            {
                "deploy": {
                    "batch_size": 1,
                    "heartbeat_interval": 1,
                    "journal_dir": e.journal_dir,
                    "store_wait": store_wait,
                }
            }
        )

    def start(version, store_wait):
        path, digest = kit.build_artifact(artifacts.directory, version)
        request = deploy_api.validate_request("shop", "test", version, artifacts.url(path), digest)
        return deploy_api.start(store, dconf(store_wait), request, "alice")

    def driver(deploy_id, store_wait):
        return deploy_api.Driver(
            store, dconf(store_wait), deploy_id, e.executor, progress=lambda p, d: e.progress.append((p, d))
        )

    def serving(name):
        return kit.get(f"http://127.0.0.1:{e.records[name]['apps']['shop']['port']}/healthz")

    e.dconf, e.start, e.driver, e.serving = dconf, start, driver, serving
    yield e
    kit.stop_apps(base)
    if not mariadb.running():
        mariadb.start()
    store.dispose()


def _stop_database_after_switch(e, batch_call, back_after=None):
    """Stop the database right after the ``batch_call``-th switch call returns (restart it later)."""
    original = e.executor.call
    seen = []

    def call(fun, hostnames, args, settings_by_host, timeout, kwargs=None):
        rets = original(fun, hostnames, args, settings_by_host, timeout, kwargs)
        if fun.endswith(".switch"):
            seen.append(hostnames)
            if len(seen) == batch_call:
                e.db.stop()
                if back_after is not None:
                    threading.Timer(back_after, e.db.start).start()
        return rets

    e.executor.call = call
    return seen


def test_database_back_within_store_wait_the_deploy_goes_on(env):
    first = env.start("1.0", store_wait=30)
    assert env.driver(first, 30).execute()["status"] == "succeeded"
    deploy_id = env.start("2.0", store_wait=30)
    switched = _stop_database_after_switch(env, 2, back_after=1)
    result = env.driver(deploy_id, 30).execute()
    assert result["status"] == "succeeded", result
    assert result["hosts_by_status"] == {"switched": 3}
    assert [p for p, _ in env.progress].count("store_lost") == 1
    lost = next(d for p, d in env.progress if p == "store_lost")
    assert lost["batch"] == 1 and lost["switched"] == switched[1]
    assert Journal(env.journal_dir).deploy_ids() == []
    assert all(env.serving(name) == (200, "ok 2.0") for name in HOSTS)


def test_database_gone_for_good_stops_at_the_batch_and_status_tells_the_truth(env):
    first = env.start("1.0", store_wait=1)
    assert env.driver(first, 1).execute()["status"] == "succeeded"
    deploy_id = env.start("2.0", store_wait=1)
    switched = _stop_database_after_switch(env, 2)
    with pytest.raises(deploy_api.DeployStopped) as err:
        env.driver(deploy_id, 1).execute()
    message = str(err.value)
    assert "the database went away at batch 1" in message and "nothing more is switched" in message
    assert f"deploy.resume {deploy_id}" in message and switched[1][0] in message
    journal = Journal(env.journal_dir)
    assert journal.deploy_ids() == [deploy_id]
    assert list(journal.entries(deploy_id)[0]["hosts"]) == switched[1]

    env.db.start()
    # Before status replays the journal the history is one host short; status writes it in.
    status = deploy_api.status(env.store, env.dconf(1), deploy_id)
    assert status["hosts_by_status"] == {"switched": 2, "staged": 1}, status
    assert {h for h, v in status["hosts"].items() if v["status"] == "switched"} == set(
        switched[0] + switched[1]
    )
    assert status["status"] == "switching" and status["journal_replayed"] == 1
    assert journal.deploy_ids() == []
    # Replaying is done once: a second status changes nothing.
    assert "journal_replayed" not in deploy_api.status(env.store, env.dconf(1), deploy_id)

    # The runner is this (live) process: resume takes over the lock as a stale runner would.
    with env.store.begin() as conn:
        conn.execute(
            runs.update().where(runs.c.id == deploy_id).values(owner="elsewhere:1", heartbeat_at=None)
        )
    result = deploy_api.resume(env.store, env.dconf(1), deploy_id, env.executor)
    assert result["status"] == "succeeded", result
    # Batch 1's host is not switched again: only batch 2's host was called.
    assert switched[2:] == [[h for h in HOSTS if h not in switched[0] + switched[1]]]
    assert all(env.serving(name) == (200, "ok 2.0") for name in HOSTS)


def test_journal_replay_is_idempotent(env, tmp_path):
    deploy_id = env.start("1.0", store_wait=1)
    journal = Journal(str(tmp_path / "j"))
    journal.record(deploy_id, 0, {HOSTS[0]: {"status": "staged"}})
    assert journal.replay(env.store, deploy_id) == 1
    assert journal.replay(env.store, deploy_id) == 0
    with env.store.connect() as conn:
        assert {r["hostname"]: r["status"] for r in history.host_rows(conn, deploy_id)}[HOSTS[0]] == "staged"
