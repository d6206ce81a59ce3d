"""The write-behind thread (SQLite and MariaDB): batches are committed in order, merged while a
write is in flight or failing, and their notifications are handed over only after the commit."""

import threading
import time

import sqlalchemy as sa
from alarms_testkit import BASE_RULES, Clock, make_ruleset

from saltops.alarms import persist
from saltops.alarms.ingest import Ingest
from saltops.alarms.pipeline import Pipeline
from saltops.alarms.schema import alarms, history
from saltops.alarms.writer import WriteBehind
from saltops.notify import queue as notify_queue
from saltops.store.engine import Store
from saltops.store.schema import event_outbox


def pipeline(clock):
    return Pipeline(make_ruleset(BASE_RULES), Ingest(clock=clock), labels=lambda h: {"idc": "bj-idc1"}, started=0.0)


def tick(p, clock, now, hosts=(), value=9.0):
    clock.now = now
    for host in hosts:
        p.event(f"salt/beacon/{host}/load/", {"id": host, "1m": value})
    batch = p.tick(now)
    return persist.Pending(batch, now, [(f"saltops/alarm/t{int(now)}/firing", {"t": now})])


def wait_for(cond, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_pending_merge_keeps_order_and_lets_newer_values_win():
    clock = Clock()
    p = pipeline(clock)
    first = tick(p, clock, 1000, hosts=("web01",))
    second = tick(p, clock, 1005, hosts=("web01", "web02"))  # web01 seen again; a group flush
    fp = next(iter(first.rows))
    assert first.rows[fp]["last_seen"] == 1000
    merged = first.merge(second)
    assert merged.rows[fp]["last_seen"] == 1005 and len(merged.rows) == 2
    assert [(h["labels"]["host"], h["event"]) for h in merged.history] == [
        ("web01", "pending"), ("web01", "firing"), ("web02", "pending"), ("web02", "firing")]
    assert [tag for tag, _ in merged.events] == ["saltops/alarm/t1000/firing", "saltops/alarm/t1005/firing"]
    assert merged.now == 1005 and len(merged.notifications) == 1
    # Rows are copies: the live alert moving on does not change what will be written.
    p.evaluator.alerts[fp].last_seen = 2000
    assert merged.rows[fp]["last_seen"] == 1005


def test_batches_are_committed_in_order_and_delivered_after_their_commit(store):
    clock = Clock()
    p = pipeline(clock)
    gate = threading.Event()
    seen_at_handover = []

    def slow_write(st, pending):
        gate.wait(10)
        return persist.write_pending(st, pending)

    def committed(queued, pending):
        with store.connect() as conn:  # what the hand-over sees is already on disk
            seen_at_handover.append((pending.now, [q[0] for q in queued], notify_queue.counts(conn).get("pending", 0)))

    writer = WriteBehind(store, on_committed=committed, write=slow_write).start()
    try:
        writer.submit(tick(p, clock, 1000, hosts=("web01",)))  # taken at once, held at the gate
        assert wait_for(lambda: writer._in_flight)
        writer.submit(tick(p, clock, 1006, hosts=("web02",)))  # group flush: a notification
        writer.submit(tick(p, clock, 1007, hosts=("web03",)))
        assert writer.busy() and not seen_at_handover
        gate.set()
        assert writer.flush(10)
        assert writer.commits == 2 and writer.merged == 1
        assert [now for now, _ids, _n in seen_at_handover] == [1000, 1007]
        (_, ids, pending_rows), = [s for s in seen_at_handover if s[1]]
        assert pending_rows == len(ids) == 1
        with store.connect() as conn:
            assert conn.execute(sa.select(event_outbox.c.tag).order_by(event_outbox.c.id)).scalars().all() == [
                "saltops/alarm/t1000/firing", "saltops/alarm/t1006/firing", "saltops/alarm/t1007/firing"]
            hosts = [row.labels["host"] for row in conn.execute(sa.select(history).order_by(history.c.id))]
            assert list(dict.fromkeys(hosts)) == ["web01", "web02", "web03"]
    finally:
        gate.set()
        writer.stop()


def test_a_failed_write_is_kept_merged_and_retried_without_delivering(store):
    clock = Clock()
    p = pipeline(clock)
    down = Store("mysql+pymysql://root@127.0.0.1:1/none")
    handed, errors = [], []
    writer = WriteBehind(down, on_committed=lambda queued, pending: handed.append(queued),
                         on_error=errors.append, retry_delay=0.05).start()
    try:
        writer.submit(tick(p, clock, 1000, hosts=("web01", "web02")))
        assert wait_for(lambda: writer.failures >= 2)
        writer.submit(tick(p, clock, 1006))  # the group flush: one notification
        assert not handed and writer.busy()
        writer.store = store  # the database is back
        assert writer.flush(10)
        assert errors and all("unavailable" in str(e) or "connect" in str(e).lower() for e in errors)
        assert len(handed) == 1 and len(handed[0]) == 1
        with store.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(alarms)).scalar() == 2
            assert notify_queue.counts(conn) == {"pending": 1}
            assert conn.execute(sa.select(sa.func.count()).select_from(event_outbox)).scalar() == 2
    finally:
        writer.stop()
        down.dispose()


def test_stop_writes_what_is_queued_and_flush_without_a_thread_says_so(store):
    clock = Clock()
    p = pipeline(clock)
    idle = WriteBehind(store)
    idle.submit(tick(p, clock, 1000, hosts=("web01",)))
    assert idle.flush(0.2) is False  # nothing will write it: say so instead of waiting
    writer = WriteBehind(store).start()
    writer.submit(idle._waiting)
    assert writer.stop(10) is True
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alarms)).scalar() == 1
