import pytest
import sqlalchemy as sa

from saltops.errors import StoreUnavailable
from saltops.store import audit, outbox
from saltops.store.engine import Store
from saltops.store.schema import audit_log, event_outbox


def test_events_and_audit_roll_back_with_the_change(store):
    with pytest.raises(RuntimeError):
        with store.begin() as conn:
            audit.record(conn, "alice", "add", "host", "web01", None, {"a": 1})
            outbox.enqueue(conn, "saltops/cmdb/changed", {"version": 1})
            raise RuntimeError("the change failed")
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(event_outbox)).scalar() == 0


def test_flush_fires_in_order_and_keeps_failures_pending(store):
    with store.begin() as conn:
        for i in range(3):
            outbox.enqueue(conn, "saltops/test/e", {"n": i})
    fired = []

    def fire_until_second(tag, data):
        if data["n"] == 1:
            raise ConnectionError("event bus down")
        fired.append((tag, data["n"]))

    assert outbox.flush(store, fire_until_second) == 1
    assert fired == [("saltops/test/e", 0)]
    assert outbox.pending_count(store) == 2
    # The bus is back: the rest goes out, in order, once.
    assert outbox.flush(store, lambda tag, data: fired.append((tag, data["n"]))) == 2
    assert [n for _, n in fired] == [0, 1, 2]
    assert outbox.flush(store, lambda tag, data: fired.append((tag, data["n"]))) == 0


def test_outbox_rejects_foreign_tags(store):
    with pytest.raises(ValueError, match="saltops/"):
        with store.begin() as conn:
            outbox.enqueue(conn, "salt/minion/x/start", {})


def test_audit_history_filters_and_requires_an_actor(store):
    with store.begin() as conn:
        audit.record(conn, "alice", "add", "host", "web01", None, {"status": "online"}, version=1)
        audit.record(conn, "bob", "update", "host", "web01", {"status": "online"}, {"status": "offline"}, version=2)
        audit.record(conn, "bob", "add", "host", "db01", None, {"status": "online"}, version=3)
    with store.connect() as conn:
        rows = audit.history(conn, object_type="host", object_id="web01")
        assert [(r["actor"], r["action"]) for r in rows] == [("bob", "update"), ("alice", "add")]
        assert rows[0]["before"] == {"status": "online"} and rows[0]["after"] == {"status": "offline"}
        assert [r["object_id"] for r in audit.history(conn, actor="bob")] == ["db01", "web01"]
    with pytest.raises(ValueError, match="actor"):
        with store.begin() as conn:
            audit.record(conn, "", "add", "host", "x")


def test_unreachable_database_is_reported_as_unavailable(tmp_path):
    store = Store("mysql+pymysql://root@127.0.0.1:1/nothing")
    with pytest.raises(StoreUnavailable, match="database unavailable"):
        with store.connect():
            pass
    store.dispose()
