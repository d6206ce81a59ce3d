"""``confpush.push``/``rollback`` with ``background=True`` and ``confpush.status``, through Salt's loader.

No daemons here: the refusals (which must come before anything is recorded
or any job started) and the lock of a push recorded for a runner job that has
not claimed it yet.  The job itself runs on real daemons in
``tests/integration/confpush/test_confpush_background_api.py``.
"""

import datetime

import pytest
import sqlalchemy as sa

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from saltops.confpush import config as cp_config
from saltops.confpush import lock as cp_lock
from saltops.confpush.api import ConfPush
from saltops.confpush.schema import locks, pushes
from saltops.store import audit
from saltops.store.audit import utcnow
from tests.support.hosts import host_record
from tests.support.refusals import assert_refused

APP, ENV = "bgshop", "test"
HOSTS = ("bg1.example.test", "bg2.example.test")
SPEC = {
    "roots": ["/etc/bgshop"],
    "values": {"port": 8080},
    "files": [{"path": "/etc/bgshop/app.json", "template": '{"port": {{ values.port }}}\n'}],
}
JID = "20261202100000123456"


@pytest.fixture(scope="module")
def hosts(run):
    assert run("set", APP, ENV, SPEC)["version"] == 1
    records = [host_record(name, env=ENV, apps={APP: {}}) for name in HOSTS]
    repo.write(run.store, "tests", records, rules=Rules.from_config(config.load({})))
    return records


def _service(run, actor="alice"):
    conf = config.load({"db_url": run.opts["saltops"]["db_url"]})
    return ConfPush(run.store, cp_config.load(conf), conf["cmdb"]["envs"], actor)


def _pushes(run):
    with run.store.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(pushes)).scalar()


def _lock(run):
    with run.store.connect() as conn:
        return conn.execute(sa.select(locks.c.push_id).where(locks.c.app == APP, locks.c.env == ENV)).scalar()


@pytest.mark.parametrize(
    "fun, args, kwargs, error",
    [
        ("push", (APP, "nowhere"), {}, "env 'nowhere' is not one of the CMDB's envs"),
        ("push", (APP, ENV), {"version": 7}, f"{APP}/{ENV} has no version 7"),
        ("push", (APP, ENV), {"hosts": "ghost.example.test"}, "not in the CMDB: ghost.example.test"),
        ("push", (APP, ENV), {"max_share": 2}, r"max_share must be a number in \(0, 1\]"),
        ("push", ("nothing", ENV), {}, "no config set for nothing in test"),
        ("push", (APP, ENV), {"background": "later"}, "background must be True or False, got 'later'"),
        ("rollback", (APP, ENV), {"to": 9}, f"{APP}/{ENV} has no version 9"),
        ("rollback", (APP, ENV), {"to": "two"}, "to must be a whole number"),
    ],
)
def test_a_bad_background_request_is_refused_at_once_and_records_nothing(
    run, hosts, fun, args, kwargs, error
):
    before = _pushes(run)
    assert_refused(run(fun, *args, **dict({"background": True}, **kwargs)), error)
    assert _pushes(run) == before and _lock(run) is None


def test_a_push_handed_to_a_job_holds_the_lock_until_the_job_takes_it(run, hosts):
    recorded = _service(run).push(APP, ENV, batch_size=1, handoff=cp_lock.handoff_owner(JID))
    push_id = recorded["id"]
    assert recorded["status"] == "running" and recorded["actor"] == "alice", recorded
    assert recorded["owner"] == f"handoff:{JID}" and recorded["runner_alive"] is True
    assert recorded["hosts"] == {name: "planned" for name in HOSTS}
    assert (recorded["batch"], recorded["batches"]) == (None, 2)

    status = run("status", push_id)
    assert {k: status[k] for k in ("id", "app", "env", "version", "kind", "status")} == {
        "id": push_id,
        "app": APP,
        "env": ENV,
        "version": 1,
        "kind": "push",
        "status": "running",
    }
    assert status["created_at"].endswith("Z") and status["finished_at"] is None
    assert [s["id"] for s in run("status")] == [push_id]
    assert [s["id"] for s in run("status", app=APP, env=ENV)] == [push_id]
    assert run("status", app=APP, env="prod") == []

    # Nobody else gets the app/env meanwhile: not a push, not a background push, not a resume.
    before = _pushes(run)
    assert_refused(run("push", APP, ENV), f"config push {push_id} of {APP}/{ENV} .* is running")
    assert_refused(
        run("push", APP, ENV, background=True), f"config push {push_id} of {APP}/{ENV} .* is running"
    )
    assert_refused(run("rollback", APP, ENV, to=1, background=True), "only one push per app and env")
    assert_refused(run("resume", APP, ENV), f"config push {push_id} .* is still driven by handoff:{JID}")
    assert _pushes(run) == before and _lock(run) == push_id

    # A job that never starts: the push turns stale after lock_stale_after; then it can be ended.
    with run.store.begin() as conn:
        old = utcnow() - datetime.timedelta(hours=1)
        conn.execute(pushes.update().where(pushes.c.id == push_id).values(heartbeat_at=old))
    stale = run("status", push_id)
    assert (
        stale["runner_alive"] is False and f"confpush.abort app={APP} env={ENV} id={push_id}" in stale["hint"]
    )
    aborted = run("abort", APP, ENV, id=push_id, user="bob")
    assert aborted["status"] == "aborted" and aborted["not_reached"] == list(HOSTS), aborted
    assert _lock(run) is None
    done = run("status", push_id)
    assert done["status"] == "aborted" and done["hosts_by_status"] == {"not_reached": 2}
    assert "runner_alive" not in done and done["finished_at"].endswith("Z")
    with run.store.connect() as conn:
        actions = [
            r["action"] for r in audit.history(conn, object_type="confpush_push", object_id=str(push_id))
        ]
    assert sorted(actions) == ["confpush.abort", "confpush.push", "confpush.push.aborted"]


def test_status_refuses_what_is_not_a_push(run):
    assert_refused(run("status", "abc"), "a config push id is a number, got 'abc'")
    assert_refused(run("status", True), "a config push id is a number, got True")
    assert_refused(run("status", 999999), "config push 999999 does not exist")
    assert_refused(run("status", app="Bad App"), "app 'Bad App' is invalid")
    assert_refused(run("status", 1, verbose=True), r"unknown argument\(s\) verbose")
