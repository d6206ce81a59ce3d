"""Write-behind and restart: nothing lost, nothing sent twice (SQLite and MariaDB)."""

import pytest
import sqlalchemy as sa
from alarms_testkit import BASE_RULES, Clock, make_ruleset

from saltops.alarms import persist
from saltops.alarms import silence as silence_mod
from saltops.alarms.ingest import Ingest
from saltops.alarms.pipeline import Pipeline
from saltops.alarms.schema import alarms, history, hosts_seen, nflog, silences
from saltops.errors import NotFound, StoreUnavailable, ValidationError
from saltops.notify import queue as notify_queue
from saltops.store.engine import Store
from saltops.store.schema import audit_log, event_outbox


def pipeline(clock, started=0.0):
    rs = make_ruleset(BASE_RULES)
    return Pipeline(rs, Ingest(clock=clock), labels=lambda h: {"idc": "bj-idc1"}, started=started)


def restart(store, clock, now):
    p = pipeline(clock, started=now)
    with store.connect() as conn:
        restored, hosts, entries = persist.load(conn)
    p.restore(restored, hosts, entries, now)
    return p


def load(clock, p, now, hosts=("web01", "web02")):
    clock.now = now
    for host in hosts:
        p.event(f"salt/beacon/{host}/load/", {"id": host, "1m": 9.0})


def test_batch_is_written_in_one_transaction_and_restored(store):
    clock = Clock(1000)
    p = pipeline(clock)
    load(clock, p, 1000)
    persist.write(store, p.tick(1000), 1000, events=[("saltops/alarm/x/firing", {"a": 1})])
    queued = persist.write(store, p.tick(1005), 1005)
    assert [(channel, payload["status"]) for _oid, channel, payload in queued] == [("hook", "firing")]
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alarms).where(alarms.c.state == "firing")).scalar() == 2
        assert conn.execute(sa.select(sa.func.count()).select_from(history)).scalar() == 4
        assert {r.hostname for r in conn.execute(sa.select(hosts_seen))} == {"web01", "web02"}
        assert conn.execute(sa.select(sa.func.count()).select_from(nflog)).scalar() == 1
        assert notify_queue.counts(conn) == {"pending": 1}
        assert conn.execute(sa.select(event_outbox.c.tag)).scalars().all() == ["saltops/alarm/x/firing"]

    # "Restart": a new pipeline from the database sends nothing new for the same alarms.
    p2 = restart(store, clock, 1010)
    assert {a.state for a in p2.evaluator.alerts.values()} == {"firing"}
    for t in range(1010, 1210, 10):
        load(clock, p2, t)
        assert not persist.write(store, p2.tick(t), t)
    # A resolution decided before a restart but not yet reported is reported after it.
    clock.now = 1205
    p2.event("salt/beacon/web01/load/", {"id": "web01", "1m": 0.5})
    assert not persist.write(store, p2.tick(1205), 1205)
    p3 = restart(store, clock, 1206)
    sent = []
    for t in (1212, 1240):
        load(clock, p3, t, hosts=("web02",))
        sent += persist.write(store, p3.tick(t), t)
    assert len(sent) == 1
    shown = {a["labels"]["host"]: a["status"] for a in sent[0][2]["alerts"]}
    assert shown == {"web02": "firing", "web01": "resolved"}


def test_failed_write_is_requeued_and_written_later(store, tmp_path):
    clock = Clock(1000)
    p = pipeline(clock)
    load(clock, p, 1000)
    persist.write(store, p.tick(1000), 1000)
    down = Store("mysql+pymysql://root@127.0.0.1:1/none")
    batch = p.tick(1005)
    assert batch.notifications
    with pytest.raises(StoreUnavailable):
        persist.write(down, batch, 1005)
    p.requeue(batch)
    again = p.tick(1006)
    queued = persist.write(store, again, 1006)
    assert len(queued) == 1
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alarms)).scalar() == 2
        assert notify_queue.counts(conn) == {"pending": 1}
    down.dispose()


def test_silences_and_acks_are_validated_and_audited(store):
    with store.begin() as conn:
        with pytest.raises(ValidationError) as err:
            silence_mod.add(conn, "alice", [], 2000, "", now=1000)
        assert len(err.value.problems) == 2
        with pytest.raises(ValidationError, match="silence not created"):
            silence_mod.add(conn, "alice", ['host=~".*"'], 2000, "why", now=1000)
        with pytest.raises(ValidationError):
            silence_mod.add(conn, "alice", ['host="a"'], 900, "past", now=1000)
        with pytest.raises(ValidationError):
            silence_mod.add(conn, "alice", ['host="a'], 2000, "bad syntax", now=1000)
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(silences)).scalar() == 0
    with store.begin() as conn:
        sid = silence_mod.add(conn, "alice", ['host="web01"', 'alertname=~"Load.*"'], 2000, "maint", now=1000)
    with store.connect() as conn:
        active = silence_mod.load_active(conn, 1500)
        assert [s.id for s in active] == [sid]
        actions = conn.execute(sa.select(audit_log.c.action, audit_log.c.actor)).all()
        assert [tuple(a) for a in actions] == [("silence.add", "alice")]
    with store.begin() as conn:
        assert silence_mod.expire(conn, "bob", sid, now=1500) is True
        assert silence_mod.expire(conn, "bob", sid, now=1600) is False
        with pytest.raises(NotFound):
            silence_mod.expire(conn, "bob", "nope", now=1600)
    with store.connect() as conn:
        assert silence_mod.load_active(conn, 1550) == []


def test_silences_from_typed_text_and_their_listing(store):
    with store.begin() as conn:
        with pytest.raises(ValidationError, match="not a duration"):
            silence_mod.create(conn, "alice", 'host="a"', "forever", "why", now=1000)
        made = silence_mod.create(conn, "alice", 'host="web01,web02",alertname=~"Disk.*"', "2h", "swap",
                                  starts="1h", now=1000)
        later = silence_mod.create(conn, "alice", ['host="db01"'], "30m", "now", now=1000)
    assert made["ends_at"] == 1000 + 3600 + 7200 and made["created_by"] == "alice"
    with store.connect() as conn:
        assert [s["id"] for s in silence_mod.listing(conn, "pending", now=1500)] == [made["id"]]
        assert [s["matchers"] for s in silence_mod.listing(conn, "active", now=1500)] == [['host="db01"']]
        assert {s["id"] for s in silence_mod.listing(conn, "all", now=1500)} == {made["id"], later["id"]}
        assert silence_mod.listing(conn, "expired", now=1500) == []
        with pytest.raises(ValidationError, match="state must be one of"):
            silence_mod.listing(conn, "gone")


def test_ack_needs_a_firing_alarm_and_ends_when_it_resolves(store):
    clock = Clock(1000)
    p = pipeline(clock)
    load(clock, p, 1000, hosts=("web01",))
    persist.write(store, p.tick(1000), 1000)
    fp = next(iter(p.evaluator.alerts))
    with store.begin() as conn:
        with pytest.raises(NotFound):
            silence_mod.ack(conn, "bob", "0" * 16, "x", now=1001)
        sid = silence_mod.ack(conn, "bob", fp, "on it", now=1001)
    with store.connect() as conn:
        row = conn.execute(sa.select(alarms).where(alarms.c.fingerprint == fp)).one()
        assert row.acked_by == "bob"
        assert [s.id for s in silence_mod.load_active(conn, 1002)] == [sid]
    # The engine's write-behind must not overwrite the ack.
    load(clock, p, 1010, hosts=("web01",))
    persist.write(store, p.tick(1010), 1010)
    with store.connect() as conn:
        assert conn.execute(sa.select(alarms.c.acked_by).where(alarms.c.fingerprint == fp)).scalar() == "bob"
    clock.now = 1020
    p.event("salt/beacon/web01/load/", {"id": "web01", "1m": 0.1})
    persist.write(store, p.tick(1020), 1020)
    with store.connect() as conn:
        assert silence_mod.load_active(conn, 1021) == []
        row = conn.execute(sa.select(alarms).where(alarms.c.fingerprint == fp)).one()
        assert row.state == "resolved" and row.acked_by is None
        with pytest.raises(ValidationError):
            silence_mod.ack(conn, "bob", fp, "late", now=1030)


def test_prune_keeps_recent_and_pending(store):
    clock = Clock(1000)
    p = pipeline(clock)
    load(clock, p, 1000)
    persist.write(store, p.tick(1000), 1000)
    with store.begin() as conn:
        persist.prune(conn, 1000 + 40 * 86400, keep_days=30)
    with store.connect() as conn:
        # Firing alarms stay whatever their age; old history goes.
        assert conn.execute(sa.select(sa.func.count()).select_from(alarms)).scalar() == 2
        assert conn.execute(sa.select(sa.func.count()).select_from(history)).scalar() == 0
