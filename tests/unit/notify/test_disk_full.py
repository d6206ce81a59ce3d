"""The notification outbox on a real filesystem that fills up.

Nothing is sent twice, and the errors are clear and rare.

The store is SQLite on a tmpfs of a few MiB (:mod:`tests.support.small_fs`);
"full" is the kernel answering ENOSPC, which SQLite reports as "database or
disk is full".
"""

import logging
import time

import pytest
import sqlalchemy as sa

from saltops.errors import StoreFull
from saltops.notify import queue as notify_queue
from saltops.notify import registry
from saltops.notify.worker import Deliverer, RetryPolicy
from saltops.store.engine import Store
from tests.support.alarm_receivers import Receivers, channel_config
from tests.support.alarm_receivers import sample_payload as payload
from tests.support.small_fs import mount_or_skip, truncate_wal


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def small_fs(tmp_path):
    fs = mount_or_skip(tmp_path / "small", size="4m")
    yield fs
    fs.umount()


@pytest.fixture
def full_store(small_fs):
    store = Store(f"sqlite:///{small_fs.path}/saltops.db")
    store.migrate()
    yield store
    store.dispose()


@pytest.fixture
def receivers():
    r = Receivers().start()
    yield r
    r.stop()


def wait_for(cond, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def _counts(store):
    with store.connect() as conn:
        return notify_queue.counts(conn)


def _store_lines(caplog):
    return [r for r in caplog.records
            if r.name == "saltops.notify.worker" and "outbox not written" in r.getMessage()]


def test_a_full_disk_is_a_store_error_that_says_where_to_free_space(full_store, small_fs):
    truncate_wal(full_store)
    small_fs.fill()
    with pytest.raises(StoreFull) as err:
        with full_store.begin() as conn:
            notify_queue.enqueue(conn, "hook", "ops", "g1", payload(), time.time())
    text = str(err.value)
    assert "disk is full" in text and "database or disk is full" in text
    assert f"free space on the filesystem holding {small_fs.path}/saltops.db" in text
    small_fs.free()
    with full_store.begin() as conn:  # space is back: the same write goes through
        notify_queue.enqueue(conn, "hook", "ops", "g1", payload(), time.time())
    assert _counts(full_store) == {"pending": 1}


def test_a_claim_refused_by_a_full_disk_sends_nothing(full_store, small_fs, receivers, caplog):
    chans = registry.build({"hook": channel_config(receivers)["hook"]})
    with full_store.begin() as conn:
        oid = notify_queue.enqueue(conn, "hook", "ops", "g1", payload(), time.time())
    truncate_wal(full_store)
    small_fs.fill()
    worker = Deliverer(full_store, chans, RetryPolicy(backoff=0.1), workers=2, poll_interval=0.02,
                       max_store_pause=0.5)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="saltops.notify.worker"):
        worker.start()
        try:
            worker.submit([(oid, "hook", payload())])
            assert wait_for(lambda: worker.store_log.failures >= 5)
            assert receivers.of("hook") == [] and worker.sends == 0
            lines = _store_lines(caplog)
            elapsed = time.monotonic() - started
            # Bounded: one line at once, then at most one a minute however often the store refused.
            assert 1 <= len(lines) <= 1 + elapsed // 60 < worker.store_log.failures
            assert lines[0].levelno == logging.ERROR and "disk is full" in lines[0].getMessage()
            assert "nothing sent" in lines[0].getMessage()
            small_fs.free()
            assert receivers.wait("hook", 1, timeout=60)
            assert wait_for(lambda: _counts(full_store) == {"sent": 1})
        finally:
            worker.stop()
    assert len(receivers.of("hook")) == 1
    assert any("works again" in r.getMessage() for r in caplog.records)


def test_an_outcome_the_full_disk_refused_is_kept_and_the_notification_not_sent_again(
        full_store, small_fs, receivers, caplog):
    """The reported storm: sent, not recorded, sent again every poll.  Here: sent once, recorded later."""
    clock = Clock(time.time())
    chans = registry.build({"sms": channel_config(receivers)["sms"]})
    with full_store.begin() as conn:
        oid = notify_queue.enqueue(conn, "sms", "ops", "g1", payload(), clock.now)

    def disk_fills_while_sending(kind, _query):
        # The claim is committed by now; the outcome will find no room.
        truncate_wal(full_store)
        small_fs.fill()

    receivers.on_request = disk_fills_while_sending
    worker = Deliverer(full_store, chans, RetryPolicy(backoff=0.1), workers=2, poll_interval=0.02,
                       clock=clock, lease=5, max_store_pause=0.5)
    with caplog.at_level(logging.WARNING, logger="saltops.notify.worker"):
        worker.start()
        try:
            worker.submit([(oid, "sms", payload())])
            assert wait_for(lambda: worker.unrecorded() == [oid])
            receivers.on_request = None
            clock.now += 3600  # far past the claim's lease: the row is "due" on disk
            failures = worker.store_log.failures
            assert wait_for(lambda: worker.store_log.failures >= failures + 4)
            assert len(receivers.of("sms")) == 1 and worker.sends == 1
            small_fs.free()
            assert wait_for(lambda: _counts(full_store) == {"sent": 1} and worker.unrecorded() == [])
        finally:
            worker.stop()
    assert len(receivers.of("sms")) == 1
    with full_store.connect() as conn:
        log = notify_queue.log(conn, outbox_id=oid)
        attempts = conn.execute(sa.select(notify_queue.outbox.c.attempts).where(notify_queue.outbox.c.id == oid)).scalar()
    assert [(r["attempt"], r["ok"]) for r in log] == [(1, True)] and attempts == 1
    assert "kept in memory" in _store_lines(caplog)[0].getMessage()
