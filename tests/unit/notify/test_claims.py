"""Each attempt is claimed in a committed transaction before it is sent: at most one send per attempt."""

import threading
import time

import pytest
import sqlalchemy as sa

from saltops.notify import queue as notify_queue
from saltops.notify import registry
from saltops.notify.worker import Deliverer, RetryPolicy
from tests.support.alarm_receivers import Receivers, channel_config
from tests.support.alarm_receivers import sample_payload as payload


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def receivers():
    r = Receivers().start()
    yield r
    r.stop()


def _enqueue(store, channel="hook", now=None):
    with store.begin() as conn:
        return notify_queue.enqueue(conn, channel, "ops", "g1", payload(), time.time() if now is None else now)


def _row(store, oid):
    with store.connect() as conn:
        return conn.execute(sa.select(notify_queue.outbox).where(notify_queue.outbox.c.id == oid)).first()


def _state(store, oid):
    row = _row(store, oid)
    return row.status, row.attempts


def test_the_claim_is_on_disk_before_the_channel_is_called(store, receivers):
    seen = []
    # What another connection reads while the request is arriving at the receiver.
    receivers.on_request = lambda kind, query: seen.append(_state(store, oid))
    chans = registry.build({"hook": channel_config(receivers)["hook"]})
    oid = _enqueue(store)
    assert Deliverer(store, chans).deliver(oid, "hook", payload()) is True
    assert seen == [("sending", 1)]
    row = _row(store, oid)
    assert (row.status, row.attempts) == ("sent", 1)


def test_racing_workers_send_a_row_once(store, receivers):
    chans = registry.build({"hook": channel_config(receivers)["hook"]})
    oid = _enqueue(store)
    workers = [Deliverer(store, chans) for _ in range(6)]
    start = threading.Barrier(len(workers))
    results = []

    def race(worker):
        start.wait()
        results.append(worker.deliver(oid, "hook", payload()))

    threads = [threading.Thread(target=race, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results, key=str) == [None] * 5 + [True]
    assert len(receivers.of("hook")) == 1
    with store.connect() as conn:
        assert [(r["attempt"], r["ok"]) for r in notify_queue.log(conn, outbox_id=oid)] == [(1, True)]


def test_a_claim_left_by_a_stopped_process_is_retried_after_its_lease_and_counted(store, receivers):
    clock = Clock(10_000.0)
    oid = _enqueue(store, now=clock.now)
    # A process claimed the attempt and stopped before sending (or before recording).
    with store.begin() as conn:
        assert notify_queue.claim(conn, oid, clock.now, 60, max_attempts=5) == notify_queue.Claim(1, False)
    chans = registry.build({"hook": channel_config(receivers)["hook"]})
    worker = Deliverer(store, chans, RetryPolicy(max_attempts=5), clock=clock, lease=60)
    assert worker.poll_once() == 0  # still within the lease: not due
    assert worker.deliver(oid, "hook", payload()) is None and not receivers.of("hook")
    clock.now += 61
    assert worker.poll_once() == 1
    oid_, channel, body = worker._queue.get_nowait()
    assert worker.deliver(oid_, channel, body) is True
    assert len(receivers.of("hook")) == 1
    row = _row(store, oid)
    assert (row.status, row.attempts) == ("sent", 2)
    with store.connect() as conn:
        log = list(reversed(notify_queue.log(conn, outbox_id=oid)))
    assert [(r["attempt"], r["ok"]) for r in log] == [(1, False), (2, True)]
    assert log[0]["error"].startswith("outcome not recorded")


def test_lost_claims_count_against_max_attempts(store, receivers):
    clock = Clock(10_000.0)
    oid = _enqueue(store, now=clock.now)
    for _ in range(3):
        with store.begin() as conn:
            assert notify_queue.claim(conn, oid, clock.now, 60, max_attempts=3) is not None
        clock.now += 61
    chans = registry.build({"hook": channel_config(receivers)["hook"]})
    worker = Deliverer(store, chans, RetryPolicy(max_attempts=3), clock=clock, lease=60)
    assert worker.deliver(oid, "hook", payload()) is None
    assert not receivers.of("hook")
    row = _row(store, oid)
    assert (row.status, row.attempts) == ("failed", 3)
    assert "never recorded" in row.last_error


def test_a_record_by_a_claim_that_was_taken_over_changes_nothing(store):
    clock = Clock(10_000.0)
    oid = _enqueue(store, now=clock.now)
    with store.begin() as conn:
        notify_queue.claim(conn, oid, clock.now, 60, max_attempts=5)
    clock.now += 61
    with store.begin() as conn:
        assert notify_queue.claim(conn, oid, clock.now, 60, max_attempts=5) == notify_queue.Claim(2, True)
    with store.begin() as conn:  # the first claimant comes back late with its failure
        assert notify_queue.record_attempt(conn, oid, "hook", 1, False, "HTTP 503", 5, clock.now,
                                     next_at=clock.now + 5) is False
    row = _row(store, oid)
    assert (row.status, row.attempts) == ("sending", 2)
