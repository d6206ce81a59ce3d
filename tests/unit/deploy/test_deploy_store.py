"""Deploy records and the app/env lock on SQLite and MariaDB."""

import datetime
import socket

import pytest
import sqlalchemy as sa

from saltops.deploy import api as deploy_api
from saltops.deploy import history, lock, status_machine
from saltops.deploy.schema import locks, runs
from saltops.errors import Conflict, NotFound, ValidationError
from saltops.store.schema import audit_log, event_outbox
from tests.support.deploy_hosts import host

SHA = "ab" * 32


def request(version="1.0", app="shop", env="prod"):
    return deploy_api.validate_request(app, env, version, f"https://ci.example.com/{app}-{version}.tar.gz", SHA)


@pytest.fixture
def fleet(add_hosts):
    add_hosts(
        [
            host("a1.example.com", "bj-idc1", ["telecom"]),
            host("a2.example.com", "bj-idc1", ["unicom"]),
            host("a3.example.com", "sh-idc1", ["telecom"]),
            host("off.example.com", status="offline"),
            host("maint.example.com", status="maintenance"),
            host("stg.example.com", env="staging"),
            host("db.example.com", apps={"mysql": {}}),
        ]
    )


def test_start_targets_online_hosts_of_env_running_app(store, dconf, fleet):
    deploy_id = deploy_api.start(store, dconf, request(), "alice", {"batch_size": 1})
    with store.connect() as conn:
        out = history.describe(conn, deploy_id)
        assert sorted(out["hosts"]) == ["a1.example.com", "a2.example.com", "a3.example.com"]
        assert out["status"] == "pending" and out["actor"] == "alice"
        assert out["options"]["batch_size"] == 1
        assert [len(b["hosts"]) for b in out["batches"]] == [1, 1, 1]
        assert all(h["status"] == "pending" for h in out["hosts"].values())
        assert lock.holder(conn, "shop", "prod")["id"] == deploy_id
        tags = [r.tag for r in conn.execute(sa.select(event_outbox.c.tag).order_by(event_outbox.c.id))]
        assert tags[-1] == f"saltops/deploy/{deploy_id}/created"
        audit = conn.execute(sa.select(audit_log).where(audit_log.c.object_type == "deploy")).mappings().all()
        assert [(a["actor"], a["action"], a["object_id"]) for a in audit] == [
            ("alice", "deploy.deploy", str(deploy_id))
        ]


def test_second_deploy_is_refused_and_changes_nothing(store, dconf, fleet):
    first = deploy_api.start(store, dconf, request("1.0"), "alice")
    with pytest.raises(
        Conflict, match=rf"deploy {first} of shop 1.0 to prod is in progress \(pending, started by alice\)"
    ):
        deploy_api.start(store, dconf, request("2.0"), "bob")
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar() == 1
        assert len(history.host_rows(conn, first)) == 3
    # Another env or another app is not blocked.
    deploy_api.start(store, dconf, request("2.0", env="staging"), "bob")


def test_nothing_to_deploy_to(store, dconf, fleet):
    with pytest.raises(ValidationError, match="no online host in env 'dev' runs app 'shop'"):
        deploy_api.start(store, dconf, request(env="dev"), "alice")
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar() == 0


@pytest.mark.parametrize(
    "args, problem",
    [
        (("Shop!", "prod", "1.0", "https://x/a.tgz", SHA), "app 'Shop!' is not an app name"),
        (("shop", "prod", "1/0", "https://x/a.tgz", SHA), "version '1/0' is invalid"),
        (("shop", "prod", "1.0", "ftp://x/a.tgz", SHA), "must be an http://, https:// or salt:// URL"),
        (("shop", "prod", "1.0", "https://x/a.tgz", "123"), "sha256 must be the 64 hexadecimal"),
        (("shop", "moon", "1.0", "https://x/a.tgz", SHA), "env 'moon' is not one of"),
    ],
)
def test_bad_requests(args, problem):
    with pytest.raises(ValidationError, match="nothing was changed") as info:
        deploy_api.validate_request(*args, envs=["prod", "staging"])
    assert any(problem in p for p in info.value.problems), info.value.problems


def _set(store, deploy_id, **values):
    with store.begin() as conn:
        conn.execute(runs.update().where(runs.c.id == deploy_id).values(**values))


def test_lock_of_a_dead_runner_is_taken_over(store, dconf, fleet):
    first = deploy_api.start(store, dconf, request("1.0"), "alice")
    _set(store, first, owner=f"{socket.gethostname()}:999999999", status="switching")
    with store.connect() as conn:
        assert lock.is_stale(history.get_run(conn, first), dconf["lock_stale_after"])
    second = deploy_api.start(store, dconf, request("2.0"), "bob")
    with store.connect() as conn:
        old = history.get_run(conn, first)
        assert old["status"] == status_machine.INTERRUPTED and old["finished_at"] is not None
        assert f"lock taken over by deploy {second}" in old["error"]
        assert lock.holder(conn, "shop", "prod")["id"] == second
        tags = [r.tag for r in conn.execute(sa.select(event_outbox.c.tag))]
        assert f"saltops/deploy/{first}/interrupted" in tags


def test_heartbeat_decides_for_another_master(store, dconf, fleet):
    first = deploy_api.start(store, dconf, request("1.0"), "alice")
    fresh = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    _set(store, first, owner="other-master.example.com:1234", heartbeat_at=fresh, status="switching")
    with pytest.raises(Conflict, match="in progress"):
        deploy_api.start(store, dconf, request("2.0"), "bob")
    _set(store, first, heartbeat_at=fresh - datetime.timedelta(seconds=dconf["lock_stale_after"] + 5))
    second = deploy_api.start(store, dconf, request("2.0"), "bob")
    with store.connect() as conn:
        assert lock.holder(conn, "shop", "prod")["id"] == second


def test_a_paused_deploy_keeps_its_lock(store, dconf, fleet):
    first = deploy_api.start(store, dconf, request("1.0"), "alice")
    _set(store, first, owner=None, heartbeat_at=None, status="paused")
    with pytest.raises(Conflict, match="paused, waiting for deploy.resume or deploy.abort"):
        deploy_api.start(store, dconf, request("2.0"), "bob")


def test_a_finished_holder_is_replaced(store, dconf, fleet):
    first = deploy_api.start(store, dconf, request("1.0"), "alice")
    _set(store, first, status="succeeded")
    second = deploy_api.start(store, dconf, request("2.0"), "bob")
    with store.connect() as conn:
        assert conn.execute(sa.select(locks.c.deploy_id)).scalar() == second


def test_status_transitions_are_checked(store, dconf, fleet):
    deploy_id = deploy_api.start(store, dconf, request(), "alice")
    with store.begin() as conn:
        history.set_status(conn, deploy_id, status_machine.STAGING)
    with pytest.raises(Conflict, match="cannot go from 'staging' to 'succeeded'"), store.begin() as conn:
        history.set_status(conn, deploy_id, status_machine.SUCCEEDED)
    with store.begin() as conn:
        history.set_status(conn, deploy_id, status_machine.FAILED, error="boom")
        lock.release(conn, "shop", "prod", deploy_id)
    with store.connect() as conn:
        run = history.get_run(conn, deploy_id)
        assert run["status"] == "failed" and run["owner"] is None and run["error"] == "boom"
        assert lock.holder(conn, "shop", "prod") is None
        actions = [
            r.action
            for r in conn.execute(sa.select(audit_log.c.action).where(audit_log.c.object_type == "deploy"))
        ]
        assert actions == ["deploy.deploy", "deploy.failed"]


def test_rollback_request_from_history(store, dconf, fleet):
    with pytest.raises(NotFound, match="no successful deploy"):
        deploy_api.rollback_request(store, "shop", "prod")
    ids = []
    for version in ("1.0", "1.1", "1.2"):
        deploy_id = deploy_api.start(store, dconf, request(version), "alice")
        _set(store, deploy_id, status="succeeded")
        ids.append(deploy_id)
    target = deploy_api.rollback_request(store, "shop", "prod")
    assert (target["version"], target["from_version"], target["from_deploy"]) == ("1.1", "1.2", ids[2])
    assert target["artifact"] == "https://ci.example.com/shop-1.1.tar.gz" and target["sha256"] == SHA
    assert deploy_api.rollback_request(store, "shop", "prod", to="1.0")["version"] == "1.0"
    with pytest.raises(NotFound, match="0.9 was never deployed successfully to prod"):
        deploy_api.rollback_request(store, "shop", "prod", to="0.9")


def test_slots_for_the_balancers(store):
    with store.begin() as conn:
        history.set_slots(conn, "shop", "prod", "blue", {"blue": "1.0"}, None)
        history.set_slots(conn, "shop", "prod", "green", {"green": "2.0"}, None)
    with store.connect() as conn:
        assert history.active_slots(conn) == {
            "prod": {"shop": {"active": "green", "version": "2.0", "blue": "1.0", "green": "2.0"}}
        }
        assert history.active_slots(conn, "staging") == {}


def test_owner_alive():
    me = lock.me()
    assert lock.owner_alive(me, None, 10)
    assert not lock.owner_alive(f"{socket.gethostname()}:999999999", None, 10)
    assert not lock.owner_alive(None, None, 10)
    now = datetime.datetime(2026, 1, 1, 12, 0, 0)
    assert lock.owner_alive("elsewhere:1", now - datetime.timedelta(seconds=5), 10, now)
    assert not lock.owner_alive("elsewhere:1", now - datetime.timedelta(seconds=50), 10, now)


def test_schema_head_is_the_deploy_branch_head():
    # The runner skips the migration when alembic_version records this revision.
    from saltops.deploy.schema import HEAD
    from saltops.store import migrate

    script = migrate._script()
    assert HEAD in {rev.revision for rev in script.get_revisions("deploy@head")}


def test_the_deploy_head_is_recorded_after_migrating(store):
    from saltops.deploy.schema import HEAD

    with store.connect() as conn:
        recorded = {r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))}
    assert HEAD in recorded


def test_a_deploy_recorded_for_a_background_job_is_taken_by_that_job_only(store, dconf, fleet):
    owner = deploy_api.handoff_owner("20261202063000123456")
    first = deploy_api.start(store, dconf, request("1.0"), "alice", owner=owner)
    with store.connect() as conn:
        run = history.get_run(conn, first)
        # Waiting for its job: neither stale nor free for another deploy.
        assert run["owner"] == owner and not lock.is_stale(run, dconf["lock_stale_after"])
    with pytest.raises(Conflict, match="in progress"):
        deploy_api.start(store, dconf, request("2.0"), "bob")
    with store.begin() as conn, pytest.raises(Conflict, match=f"being driven by {owner}"):
        lock.claim(conn, first, handoff=deploy_api.handoff_owner("20261202063000999999"))
    with store.begin() as conn:
        lock.claim(conn, first, handoff=owner)
    with store.connect() as conn:
        assert history.get_run(conn, first)["owner"] == lock.me()


def test_a_background_job_that_never_started_leaves_a_stale_deploy(store, dconf, fleet):
    first = deploy_api.start(store, dconf, request("1.0"), "alice", owner=deploy_api.handoff_owner("1"))
    old = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    _set(store, first, heartbeat_at=old - datetime.timedelta(seconds=dconf["lock_stale_after"] + 5))
    with store.connect() as conn:
        assert lock.is_stale(history.get_run(conn, first), dconf["lock_stale_after"])
