"""Delivery: worker threads take notifications from the outbox and send them.

New notifications are handed over in memory right after their transaction
commits (no polling delay); a poller picks up rows that are due for a retry
and rows left over by a previous run.  Backoff is exponential with jitter,
capped, and a row fails for good after ``max_attempts``.

Each attempt is claimed in a committed transaction before anything is sent
(:func:`saltops.notify.queue.claim`), so an attempt sends at most once:

* a claim that cannot be committed (a full disk, a database that is down)
  sends nothing, and the worker pauses its writes (doubling the pause up to
  ``max_store_pause``, 30 s) instead of hammering the database;
* an outcome that cannot be recorded is kept in memory and written by the
  poller once the database takes writes again; the row stays out of the due
  list meanwhile, because it is claimed (and in this process's busy set);
* a process that stops between claiming and recording leaves the row
  ``sending``: after ``lease`` seconds (``saltops:notify:claim_timeout``) the
  next claim takes it, logs the lost attempt, and sends again.

Store failures reach the master log at a bounded rate
(:class:`saltops.failurelog.FailureLog`), and every error text is scrubbed of
channel secrets (:mod:`saltops.notify.redact`) before it is logged or stored.
"""

import logging
import queue
import random
import threading
import time

from saltops.failurelog import FailureLog
from saltops.notify import queue as notify_queue
from saltops.notify import redact
from saltops.notify.base import DeliveryError

log = logging.getLogger(__name__)

# The longest pause of writes after the store refused one: also how long delivery may lag
# behind a database that has room again.
MAX_STORE_PAUSE = 30.0


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
                 clock=time.time, lease=120.0, log_interval=60.0, max_store_pause=MAX_STORE_PAUSE):
        self.store = store
        self.channels = channels
        self.retry = retry or RetryPolicy()
        self.workers = workers
        self.poll_interval = poll_interval
        self.on_result = on_result  # (channel, ok, seconds, give_up) -> None, for metrics
        self.clock = clock
        self.lease = float(lease)
        self.max_store_pause = float(max_store_pause)
        self.sends = 0  # channel sends made by this deliverer
        self.store_log = FailureLog(log, "notification outbox not written", log_interval, clean=redact.scrub)
        self._queue = queue.Queue()
        self._busy = set()
        self._unrecorded = {}  # oid -> record_attempt arguments of an attempt made but not yet on disk
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self._store_backoff = 0.0
        self._store_paused_until = 0.0  # time.monotonic() before which no write is tried

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
        self._store_paused_until = 0.0
        self.flush_unrecorded()
        with self._lock:
            left = sorted(self._unrecorded)
        if left:
            log.error("notifications %s were attempted but their outcome could not be recorded; the next run "
                      "tries them again %.0f s after their claim (a delivered one is then sent twice)",
                      left, self.lease)

    def submit(self, items):
        """Queue ``[(outbox_id, channel, payload)]`` that were just committed."""
        with self._lock:
            for oid, channel, payload in items:
                if oid in self._busy:
                    continue
                self._busy.add(oid)
                self._queue.put((oid, channel, payload))

    def pending(self):
        with self._lock:
            return len(self._busy)

    def unrecorded(self):
        """Outbox ids whose last attempt is made but not yet recorded (the store refused the write)."""
        with self._lock:
            return sorted(self._unrecorded)

    # -- the store: writes pause after a failure ----------------------------------------------
    def _writable(self):
        return time.monotonic() >= self._store_paused_until

    def _store_failed(self, err, detail):
        self._store_backoff = min(self.max_store_pause, max(self.poll_interval, self._store_backoff * 2))
        self._store_paused_until = time.monotonic() + self._store_backoff
        self.store_log.failed(err, detail)

    def _store_worked(self):
        self._store_backoff = 0.0
        self.store_log.recovered()

    # -- threads --------------------------------------------------------------------------------
    def _poll(self):
        while not self._stop.wait(self.poll_interval):
            try:
                self.flush_unrecorded()
                self.poll_once()
            except Exception as err:  # the database may be down: try again next round
                self._store_failed(err, " (reading due notifications)")

    def poll_once(self):
        """Queue the rows that are due (none while writes are paused: they could not be claimed)."""
        if not self._writable():
            return 0
        with self._lock:
            busy = set(self._busy)
        with self.store.connect() as conn:
            rows = notify_queue.due(conn, self.clock(), limit=200, exclude=busy)
        with self._lock:
            for row in rows:
                if row.id in self._busy:
                    continue
                self._busy.add(row.id)
                self._queue.put((row.id, row.channel, row.payload))
        return len(rows)

    def flush_unrecorded(self):
        """Record the outcomes the store refused earlier; True when none is left."""
        with self._lock:
            waiting = list(self._unrecorded.items())
        for oid, record in waiting:
            if not self._writable() or not self._record(record):
                return False
            with self._lock:
                self._unrecorded.pop(oid, None)
                self._busy.discard(oid)
        return True

    def _work(self):
        while True:
            item = self._queue.get()
            if item is None or self._stop.is_set():
                return
            oid, channel, payload = item
            try:
                self.deliver(oid, channel, payload)
            except Exception:  # a bug here must not kill the worker; the row is retried after its lease
                log.exception("notification %s via %s", oid, channel)
            finally:
                with self._lock:
                    if oid not in self._unrecorded:
                        self._busy.discard(oid)

    # -- one notification -----------------------------------------------------------------------
    def deliver(self, oid, channel_name, payload):
        """Claim, send and record one notification.

        True when it was delivered, False when the attempt failed, None when
        nothing was sent: the row is not due, another worker has it, or the
        claim could not be committed.
        """
        if not self._writable():
            return None
        try:
            with self.store.begin() as conn:
                claimed = notify_queue.claim(conn, oid, self.clock(), self.lease, self.retry.max_attempts)
        except Exception as err:
            self._store_failed(err, f" (claiming notification {oid}; nothing sent)")
            return None
        self._store_worked()
        if claimed is None:
            return None
        attempt = claimed.attempt
        channel = self.channels.get(channel_name)
        started = time.monotonic()
        error = None
        retryable = False
        if channel is None:
            error = f"channel {channel_name!r} is not configured under saltops:notify:channels"
        else:
            self.sends += 1
            try:
                channel.send(payload)
            except DeliveryError as err:
                error, retryable = str(err), err.retryable
            except Exception as err:  # a channel bug must not kill the worker
                error, retryable = f"{type(err).__name__}: {err}", True
        elapsed = time.monotonic() - started
        if error is not None:
            error = redact.scrub(error, channel.secrets() if channel is not None else ())
        now = self.clock()
        ok = error is None
        give_up = not ok and (not retryable or attempt >= self.retry.max_attempts)
        next_at = None if ok or give_up else now + self.retry.delay(attempt)
        if not ok:
            log.warning("notification %s via %s failed (attempt %d%s): %s", oid, channel_name, attempt,
                        ", giving up" if give_up else "", error)
        record = {"oid": oid, "channel": channel_name, "attempt": attempt, "ok": ok, "error": error,
                  "duration_ms": elapsed * 1000, "now": now, "next_at": next_at, "give_up": give_up}
        if not self._record(record):
            # Kept until the store takes it: the row stays claimed, so it is not sent again meanwhile.
            with self._lock:
                self._unrecorded[oid] = record
        if self.on_result is not None:
            self.on_result(channel_name, ok, elapsed, give_up)
        return ok

    def _record(self, record):
        try:
            with self.store.begin() as conn:
                notify_queue.record_attempt(conn, record["oid"], record["channel"], record["attempt"], record["ok"],
                                      record["error"], record["duration_ms"], record["now"],
                                      next_at=record["next_at"], give_up=record["give_up"])
        except Exception as err:
            self._store_failed(err, f" (outcome of notification {record['oid']}, kept in memory)")
            return False
        self._store_worked()
        return True
