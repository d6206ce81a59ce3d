"""Delivery: worker threads take notifications from the outbox and send them.

New notifications are handed over in memory right after their transaction
commits (no polling delay); a poller picks up rows that are due for a retry
and rows left over by a previous run.  Backoff is exponential with jitter,
capped, and a row fails for good after ``max_attempts``.
"""

import logging
import queue
import random
import threading
import time

from saltops.notify import outbox
from saltops.notify.base import DeliveryError

log = logging.getLogger(__name__)


class RetryPolicy:
    def __init__(self, max_attempts=10, backoff=5.0, max_backoff=600.0, jitter=0.1):
        self.max_attempts = int(max_attempts)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.jitter = float(jitter)

    def delay(self, attempt):
        base = min(self.max_backoff, self.backoff * (2 ** max(0, attempt - 1)))
        return base * (1 + random.uniform(-self.jitter, self.jitter))


class Deliverer:
    def __init__(self, store, channels, retry=None, workers=4, poll_interval=1.0, on_result=None,
                 clock=time.time):
        self.store = store
        self.channels = channels
        self.retry = retry or RetryPolicy()
        self.workers = workers
        self.poll_interval = poll_interval
        self.on_result = on_result  # (channel, ok, seconds) -> None, for metrics
        self.clock = clock
        self._queue = queue.Queue()
        self._busy = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def start(self):
        for idx in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"saltops-notify-{idx}", daemon=True)
            thread.start()
            self._threads.append(thread)
        poller = threading.Thread(target=self._poll, name="saltops-notify-poll", daemon=True)
        poller.start()
        self._threads.append(poller)

    def stop(self, timeout=5.0):
        self._stop.set()
        for _ in range(self.workers):
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def submit(self, items, attempts=0):
        """Queue ``[(outbox_id, channel, payload)]`` that were just committed."""
        with self._lock:
            for oid, channel, payload in items:
                if oid in self._busy:
                    continue
                self._busy.add(oid)
                self._queue.put((oid, channel, payload, attempts))

    def pending(self):
        with self._lock:
            return len(self._busy)

    def _poll(self):
        while not self._stop.wait(self.poll_interval):
            try:
                self.poll_once()
            except Exception as err:  # the database may be down: try again next round
                log.warning("notification outbox poll failed: %s", err)

    def poll_once(self):
        with self._lock:
            busy = set(self._busy)
        with self.store.connect() as conn:
            rows = outbox.due(conn, self.clock(), limit=200, exclude=busy)
        with self._lock:
            for row in rows:
                if row.id in self._busy:
                    continue
                self._busy.add(row.id)
                self._queue.put((row.id, row.channel, row.payload, row.attempts))
        return len(rows)

    def _work(self):
        while True:
            item = self._queue.get()
            if item is None or self._stop.is_set():
                return
            oid, channel, payload, attempts = item
            try:
                self.deliver(oid, channel, payload, attempts)
            except Exception as err:  # the outcome could not be recorded: the poller retries
                log.warning("notification %s via %s: %s", oid, channel, err)
            finally:
                with self._lock:
                    self._busy.discard(oid)

    def deliver(self, oid, channel_name, payload, attempts):
        """Send one notification and record the attempt; return True when delivered."""
        attempt = attempts + 1
        channel = self.channels.get(channel_name)
        started = time.monotonic()
        error = None
        retryable = False
        if channel is None:
            error = f"channel {channel_name!r} is not configured under saltops:notify:channels"
        else:
            try:
                channel.send(payload)
            except DeliveryError as err:
                error, retryable = str(err), err.retryable
            except Exception as err:  # a channel bug must not kill the worker
                error, retryable = f"{type(err).__name__}: {err}", True
        elapsed = time.monotonic() - started
        now = self.clock()
        ok = error is None
        give_up = not ok and (not retryable or attempt >= self.retry.max_attempts)
        next_at = None if ok or give_up else now + self.retry.delay(attempt)
        if not ok:
            log.warning("notification %s via %s failed (attempt %d%s): %s", oid, channel_name, attempt,
                        ", giving up" if give_up else "", error)
        with self.store.begin() as conn:
            outbox.record_attempt(conn, oid, channel_name, attempt, ok, error, elapsed * 1000, now,
                                  next_at=next_at, give_up=give_up)
        if self.on_result is not None:
            self.on_result(channel_name, ok, elapsed, give_up)
        return ok
