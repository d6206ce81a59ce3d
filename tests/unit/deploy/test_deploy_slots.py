"""The live blue/green slot as a CMDB change, and what the balancers' pillar reads (SQLite and MariaDB)."""

import json

import pytest
import sqlalchemy as sa

from saltops import config
from saltops.cmdb import api
from saltops.cmdb import version as cmdb_version
from saltops.cmdb.balancers import BalancerUpdate, outcome_of
from saltops.deploy import history, slots
from saltops.errors import StoreUnavailable
from saltops.pillar import slots as pillar_slots
from saltops.store.schema import audit_log
from tests.support.deploy_hosts import host


@pytest.fixture
def fleet(add_hosts):
    lb = dict(host("lb01.example.com", apps={}), roles=["lb"])
    add_hosts(
        [
            host("a1.example.com"),
            host("a2.example.com", status="maintenance"),
            host("stg.example.com", env="staging"),
            host("db.example.com", apps={"mysql": {}}),
            lb,
            dict(lb, hostname="lb09.example.com", env="staging"),
        ]
    )


def test_a_flip_is_a_cmdb_change_that_names_the_balancers(store, fleet):
    with store.connect() as conn:
        before = cmdb_version.current(conn)
    with store.begin() as conn:
        version = slots.record(conn, "shop", "prod", "green", {"green": "2.0"}, 7, "alice")
    assert version == before + 1
    with store.connect() as conn:
        assert history.get_slots(conn, "shop", "prod")["active"] == "green"
        rows = conn.execute(sa.select(audit_log).where(audit_log.c.version == version)).mappings().all()
    # Every host of the app in the env (any status), none of another env or app.
    assert sorted(r["object_id"] for r in rows) == ["a1.example.com", "a2.example.com"]
    assert {(r["actor"], r["action"], r["object_type"]) for r in rows} == {("alice", "deploy.flip", "host")}
    row = next(r for r in rows if r["object_id"] == "a1.example.com")
    assert row["before"]["deploy_slot"] == {"shop": None}
    assert row["after"]["deploy_slot"] == {"shop": "green"} and row["after"]["deploy_id"] == 7
    # cmdb.refresh reads that version: the balancer of prod gets its state, staging's does not.
    plan = api.refresh_plan(store, config.load({}), version)
    assert plan["apply"] == {"lb01.example.com": ["lb"]}
    assert sorted(plan["hosts"]) == ["a1.example.com", "a2.example.com"]
    # Back to no slot at all (the first blue/green deploy failed its flip).
    with store.begin() as conn:
        again = slots.record(conn, "shop", "prod", None, {}, 7, "alice", reason="rollback")
    assert again == version + 1
    with store.connect() as conn:
        assert history.get_slots(conn, "shop", "prod") is None
        assert slots.live(conn) == {}


def test_rolling_deploy_into_the_live_slot_keeps_the_row(store, fleet):
    with store.begin() as conn:
        slots.record(conn, "shop", "prod", "blue", {"blue": "1.0"}, 1, "alice")
        slots.set_versions(conn, "shop", "prod", {"blue": "1.1"}, 2)
        slots.set_versions(conn, "blog", "prod", {"blue": "9"}, 3)  # no row: nothing to keep consistent
    with store.connect() as conn:
        assert history.active_slots(conn, "prod") == {
            "prod": {"shop": {"active": "blue", "version": "1.1", "blue": "1.1", "green": None}}
        }
        assert history.get_slots(conn, "blog", "prod") is None


def test_a_bad_slot_is_refused(store):
    with store.begin() as conn, pytest.raises(ValueError, match="slot must be one of blue, green"):
        slots.record(conn, "shop", "prod", "purple", {}, 1, "alice")


class _Source:
    def __init__(self, store):
        self.store = store
        self.down = False

    def __call__(self):
        if self.down:
            raise StoreUnavailable("database unavailable: connection refused")
        return self.store


def test_live_slots_are_read_once_per_cmdb_version(store, fleet, tmp_path):
    source = _Source(store)
    backup = tmp_path / "snap.slots.json"
    cache = pillar_slots.LiveSlots(source, str(backup))
    assert cache.get(10) == {}
    with store.begin() as conn:
        version = slots.record(conn, "shop", "prod", "green", {"green": "2.0"}, 1, "alice")
    # Same version: no query, even though the row changed (a flip always moves the version).
    assert cache.get(10) == {} and cache.reads == 1
    assert cache.get(version) == {"prod": {"shop": {"active": "green"}}} and cache.reads == 2
    assert cache.get(version) == {"prod": {"shop": {"active": "green"}}} and cache.reads == 2
    assert json.loads(backup.read_text()) == {"prod": {"shop": {"active": "green"}}}
    # Database down: the last copy, without trying the database when the render is stale.
    source.down = True
    assert cache.get(version + 5, stale=True) == {"prod": {"shop": {"active": "green"}}}
    assert cache.get(version + 5) == {"prod": {"shop": {"active": "green"}}}
    # A worker started during the outage: the backup file.
    fresh = pillar_slots.LiveSlots(source, str(backup))
    assert fresh.get(version, stale=True) == {"prod": {"shop": {"active": "green"}}}
    # Nothing at all: the balancer's render fails rather than route to the wrong slot.
    backup.unlink()
    with pytest.raises(pillar_slots.SlotsUnavailable, match="cannot be read and this master has no copy"):
        pillar_slots.LiveSlots(source, str(backup)).get(version, stale=True)
    # prefetch never raises; it fills the copy when the database answers.
    lazy = pillar_slots.LiveSlots(source, str(backup))
    lazy.prefetch(version)
    assert lazy.data is None
    source.down = False
    lazy.prefetch(version)
    assert lazy.data == {"prod": {"shop": {"active": "green"}}} and lazy.reads == 1
    lazy.prefetch(version)
    assert lazy.reads == 1


def _state(ok=True):
    return {
        "result": ok,
        "retcode": 0 if ok else 2,
        "states": 3,
        "changed": ["lb-config-file-file-managed"] if ok else [],
        "failed": {} if ok else {"lb-config-file-file-managed": "check_cmd execution failed"},
        "errors": [],
    }


def test_balancer_outcome():
    done = slots.balancer_outcome(
        outcome_of(
            {
                "balancers": ["lb01", "lb02"],
                "applied": {"lb01": "lb"},
                "apply_skipped": {"lb02": "status offline in the CMDB"},
                "apply_results": {"lb01": _state()},
                "apply_test": False,
            }
        )
    )
    assert done["ok"] and done["applied"] == ["lb01"] and done["error"] is None
    assert "balancers left out: lb02" in done["warnings"][0]
    failed = slots.balancer_outcome(
        outcome_of(
            {
                "balancers": ["lb01", "lb02"],
                "applied": {"lb01": "lb", "lb02": "lb"},
                "apply_skipped": {},
                "apply_results": {"lb01": _state(), "lb02": _state(False)},
            }
        )
    )
    assert not failed["ok"] and list(failed["failed"]) == ["lb02"] and failed["applied"] == ["lb01"]
    assert "the balancer state failed on lb02" in failed["error"] and "check_cmd" in failed["error"]
    unreached = slots.balancer_outcome(
        outcome_of(
            {
                "balancers": ["lb01"],
                "applied": {},
                "apply_skipped": {"lb01": "its pillar refresh was not confirmed: state not applied"},
            }
        )
    )
    assert not unreached["ok"] and "no balancer applied the new slot (lb01: its pillar" in unreached["error"]
    refused = slots.balancer_outcome(BalancerUpdate(error="the CMDB database is unavailable"))
    assert not refused["ok"] and "balancer update failed: the CMDB database is unavailable" in refused["error"]
    nobody = slots.balancer_outcome(outcome_of({"balancers": [], "applied": {}, "apply_skipped": {}}))
    assert nobody["ok"] and "no balancer serves" in nobody["warnings"][0]
    test_mode = slots.balancer_outcome(
        outcome_of(
            {
                "balancers": ["lb01"],
                "applied": {"lb01": "lb"},
                "apply_results": {"lb01": _state()},
                "apply_test": True,
            }
        )
    )
    assert test_mode["ok"] and "test=True" in test_mode["warnings"][-1]
    assert slots.balancer_outcome(None)["ok"]
