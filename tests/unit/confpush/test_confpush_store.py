"""The confpush tables: set versions, audit, the app/env lock, pushes planned over lines and IDCs."""

import datetime

import pytest
import sqlalchemy as sa

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from saltops.confpush import config as cp_config
from saltops.confpush import driver, lock, model
from saltops.confpush import store as cstore
from saltops.confpush.schema import locks, pushes
from saltops.errors import Conflict, NotFound
from saltops.store import audit
from saltops.store.engine import Store

SETTINGS = cp_config.load({})


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/saltops.db"
    else:
        url = request.getfixturevalue("mysql_database").url
    s = Store(url)
    s.migrate()
    yield s
    s.dispose()


def _spec(port):
    return model.normalise(
        {
            "roots": ["/etc/shop"],
            "values": {"port": port},
            "files": [{"path": "/etc/shop/app.conf", "template": "port={{ values.port }}"}],
        },
        SETTINGS,
    )


def test_sets_are_versioned_audited_and_an_identical_set_stores_nothing(store):
    with store.begin() as conn:
        assert cstore.save_set(conn, "alice", "shop", "test", _spec(1)) == (1, True)
        assert cstore.save_set(conn, "bob", "shop", "test", _spec(1)) == (1, False)
        assert cstore.save_set(conn, "bob", "shop", "test", _spec(2)) == (2, True)
    with store.connect() as conn:
        assert [v["version"] for v in cstore.versions(conn, "shop", "test")] == [2, 1]
        assert cstore.get_set(conn, "shop", "test", 1)["spec"]["values"] == {"port": 1}
        rows = audit.history(conn, object_type="confpush_set")
        assert [(r["actor"], r["after"]["version"]) for r in rows] == [("bob", 2), ("alice", 1)]
        with pytest.raises(NotFound, match="has no version 7"):
            cstore.get_set(conn, "shop", "test", 7)
        with pytest.raises(NotFound, match="no config set for shop in prod"):
            cstore.get_set(conn, "shop", "prod")


def _hosts(store, count):
    records = [
        {
            "hostname": f"web{i:02d}",
            "ip": f"10.0.0.{i}",
            "lines": {("telecom", "unicom")[i % 2]: f"1.1.1.{i}"},
            "roles": ["web"],
            "platform": "Debian-12",
            "machine_type": "vm",
            "idc": ("bj-idc1", "sh-idc1")[i % 2],
            "env": "test",
            "status": "online",
            "owner": "team",
            "apps": {"shop": {}},
        }
        for i in range(count)
    ]
    repo.write(store, "tester", records, rules=Rules.from_config(config.load({})))
    return records


def test_a_push_is_planned_across_lines_and_idcs_and_holds_the_lock(store):
    _hosts(store, 4)
    with store.begin() as conn:
        cstore.save_set(conn, "alice", "shop", "test", _spec(1))
    stored, records, rendered = driver.render_targets(store, "shop", "test")
    assert sorted(rendered) == ["web00", "web01", "web02", "web03"]
    push = driver.Push(store, None, SETTINGS, "alice")
    push_id = push.start("shop", "test", stored, rendered, records, "push", batch_size=2)
    for batch in push.plan["batches"]:
        # Two IDCs and two lines: a batch of two takes one host of each.
        assert len({r["idc"] for r in records if r["hostname"] in batch["hosts"]}) == len(batch["hosts"])
    second = driver.Push(store, None, SETTINGS, "bob")
    with pytest.raises(
        Conflict, match=f"config push {push_id} of shop/test .* only one push per app and env"
    ):
        second.start("shop", "test", stored, rendered, records, "push")
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(pushes)).scalar() == 1


def test_the_lock_of_a_dead_push_is_taken_over_and_that_push_marked_interrupted(store):
    # Driven from another master whose last heartbeat is long past: its runner is gone.
    owner = "another-master.example:4242"
    with store.begin() as conn:
        old = cstore.create_push(conn, "alice", "shop", "test", 1, "push", {"total": 1, "batches": []}, owner)
        lock.acquire(conn, "shop", "test", old, 120)
        conn.execute(pushes.update().values(heartbeat_at=datetime.datetime(2020, 1, 1)))
    with store.begin() as conn:
        new = cstore.create_push(
            conn, "bob", "shop", "test", 1, "push", {"total": 1, "batches": []}, lock.me()
        )
        assert lock.acquire(conn, "shop", "test", new, 120) == old
    with store.connect() as conn:
        assert cstore.get_push(conn, old)["status"] == cstore.INTERRUPTED
        assert conn.execute(sa.select(locks.c.push_id)).scalar() == new


def test_targets_refuse_unknown_hosts_and_hosts_without_the_app(store):
    _hosts(store, 2)
    with store.connect() as conn:
        with pytest.raises(NotFound, match="not in the CMDB: ghost"):
            driver.targets(conn, "shop", "test", ["ghost"])
        with pytest.raises(NotFound, match="no online host runs other in test"):
            driver.targets(conn, "other", "test")
        assert [r["hostname"] for r in driver.targets(conn, "shop", "test", ["web01"])] == ["web01"]


def test_the_hosts_a_cmdb_change_gave_an_app_come_from_the_audit_log(store):
    from saltops.cmdb import version as cmdb_version
    from saltops.confpush import changes

    _hosts(store, 2)
    with store.connect() as conn:
        first = cmdb_version.current(conn)
        # A new host with the app counts as gaining it.
        assert changes.new_app_hosts(conn, first) == {("shop", "test"): ["web00", "web01"]}
    rules = Rules.from_config(config.load({}))
    repo.update(store, "tester", "web00", {"apps": {"shop": {}, "cart": {"port": 1}}}, rules=rules)
    repo.update(
        store, "tester", "web01", {"status": "offline", "apps": {"shop": {}, "blog": {}}}, rules=rules
    )
    with store.connect() as conn:
        version = cmdb_version.current(conn)
        assert changes.new_app_hosts(conn, version - 1) == {("cart", "test"): ["web00"]}
        # An offline host gets nothing pushed.
        assert changes.new_app_hosts(conn, version) == {}


def test_the_reaction_to_a_cmdb_change_is_claimed_once(store):
    # Two masters (or a replayed event) react to the same CMDB version: one takes it.
    assert cstore.claim_cmdb_change(store, 7, "Reactor@m1:1") is True
    assert cstore.claim_cmdb_change(store, 7, "Reactor@m2:2") is False
    assert cstore.claim_cmdb_change(store, 8, "Reactor@m2:2") is True


def test_a_push_records_its_planned_files_and_only_a_push_whose_runner_is_gone_is_taken_up(store):
    _hosts(store, 2)
    with store.begin() as conn:
        cstore.save_set(conn, "alice", "shop", "test", _spec(1))
    stored, records, rendered = driver.render_targets(store, "shop", "test")
    push_id = driver.Push(store, None, SETTINGS, "alice").start(
        "shop", "test", stored, rendered, records, "push", batch_size=1
    )
    with store.connect() as conn:
        planned = cstore.planned_files(conn, push_id)
    assert {h: [(f["path"], f["text"], f["status"]) for f in files] for h, files in planned.items()} == {
        h: [("/etc/shop/app.conf", "port=1\n", "planned")] for h in ("web00", "web01")
    }
    # Its runner (this process) is alive: nobody else may drive it.
    with pytest.raises(Conflict, match=f"config push {push_id} of shop/test is still driven by"):
        driver.reopen(driver.Push(store, None, SETTINGS, "bob"), push_id, "resume")
    with store.begin() as conn:
        cstore.stopped(conn, push_id, "its runner was stopped")
    taker = driver.Push(store, None, SETTINGS, "bob")
    row = driver.reopen(taker, push_id, "abort")
    assert row["batch"] is None and taker.waiting(0) == taker.plan["batches"][0]["hosts"]
    assert taker.rendered == planned
    # Now driven by this live process again: a second taker is refused.
    with pytest.raises(Conflict, match="is still driven by"):
        driver.reopen(driver.Push(store, None, SETTINGS, "carol"), push_id, "resume")
    result = taker.finish(cstore.ABORTED, "aborted by bob")
    assert result["status"] == "aborted" and result["not_reached"] == ["web00", "web01"]
    with store.connect() as conn:
        assert {f["status"] for files in cstore.planned_files(conn, push_id).values() for f in files} == {
            "not_reached"
        }
        assert conn.execute(sa.select(sa.func.count()).select_from(locks)).scalar() == 0
        rows = audit.history(conn, object_type="confpush_push")
        assert ("bob", "confpush.abort") in [(r["actor"], r["action"]) for r in rows]
        with pytest.raises(Conflict, match="is aborted; there is nothing to resume"):
            driver.reopen(driver.Push(store, None, SETTINGS, "bob"), push_id, "resume")
