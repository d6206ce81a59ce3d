"""Write-behind in its own thread: the database write never holds up the alarm loop.

The loop hands each tick's batch to :meth:`WriteBehind.submit` and goes back
to reading events; a writer thread commits it (:func:`persist.write_pending`,
one transaction) and only then calls ``on_committed(queued, pending)``, which
hands the new notifications to delivery.  So a notification is never sent
before the state that decided it is on disk, and the loop's latency no longer
includes the commit (on MariaDB, PyMySQL's escaping and the round trips).

The queue is bounded by merging: batches waiting while a write is in flight
are merged into one (newer values win, history and notifications keep their
order), so at most one write is in flight and one merged batch waits, however
slow the database is.  A write that fails is kept, merged with whatever came
in meanwhile and tried again after ``retry_delay``; nothing is delivered
until it is committed.  While writes keep failing (a full disk, a database
that is down) the master log gets one line at once and then at most one per
``log_interval`` (:class:`saltops.failurelog.FailureLog`), and one more when a
write succeeds again.
"""

import logging
import threading
import time

from saltops.alarms import persist
from saltops.alarms.lease import LeaseLost
from saltops.failurelog import FailureLog

log = logging.getLogger(__name__)


class WriteBehind:
    def __init__(self, store, on_committed=None, on_error=None, retry_delay=1.0, write=None,
                 log_interval=60.0):
        self.store = store
        self.on_committed = on_committed  # (queued, pending) -> None, in the writer thread
        self.on_error = on_error  # (exception) -> None
        self.retry_delay = retry_delay
        self._write = write or persist.write_pending
        self._cond = threading.Condition()
        self._waiting = None  # the merged Pending not yet taken by the writer
        self._in_flight = False
        self._failed = None  # a Pending whose write failed, to be tried again
        self._stop = False
        self._thread = None
        self.commits = 0
        self.merged = 0  # batches that were merged into another before being written
        self.failures = 0
        self.dropped = 0  # batches refused because another engine holds the lease
        self.last_seconds = 0.0  # how long the last successful transaction took
        self.failure_log = FailureLog(log, "alarm state not written (kept in memory, retried)", log_interval)

    def start(self):
        self._thread = threading.Thread(target=self._run, name="saltops-alarms-writer", daemon=True)
        self._thread.start()
        return self

    def submit(self, pending):
        """Queue a :class:`persist.Pending` for the next write; never blocks on the database."""
        with self._cond:
            if self._waiting is None:
                self._waiting = pending
            else:
                self._waiting.merge(pending)
                self.merged += 1
            self._cond.notify_all()

    def busy(self):
        with self._cond:
            return self._waiting is not None or self._in_flight or self._failed is not None

    def flush(self, timeout=30.0):
        """Wait until everything submitted so far is committed; False on timeout or with no writer."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._waiting is not None or self._in_flight or self._failed is not None:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._cond.wait(min(left, 0.1))
            return True

    def stop(self, timeout=10.0):
        """Write what is queued (within ``timeout``), then end the writer thread."""
        done = self.flush(timeout)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        return done

    def _take(self):
        """The next Pending to write (a failed one first, merged with newer work), or None to stop."""
        with self._cond:
            while True:
                if self._failed is not None:
                    pending, self._failed = self._failed, None
                    if self._waiting is not None:
                        pending.merge(self._waiting)
                        self._waiting = None
                        self.merged += 1
                    self._in_flight = True
                    return pending
                if self._waiting is not None:
                    pending, self._waiting = self._waiting, None
                    self._in_flight = True
                    return pending
                if self._stop:
                    return None
                self._cond.wait()

    def _run(self):
        while True:
            pending = self._take()
            if pending is None:
                return
            started = time.monotonic()
            try:
                queued = self._write(self.store, pending)
            except LeaseLost as err:
                # Another master's engine evaluates: what this one decided is not to be sent.
                log.warning("alarm state of this engine dropped: %s", err)
                self.dropped += 1
                with self._cond:
                    self._in_flight = False
                    self._cond.notify_all()
                continue
            except Exception as err:
                self.failures += 1
                self.failure_log.failed(err, f" (every {self.retry_delay:g} s, {len(pending)} rows waiting)")
                if self.on_error is not None:
                    self.on_error(err)
                with self._cond:
                    self._failed = pending
                    self._in_flight = False
                    self._cond.notify_all()
                    if self._stop:
                        return
                    # Wait before trying again, unless asked to stop.
                    self._cond.wait(self.retry_delay)
                continue
            self.commits += 1
            self.last_seconds = time.monotonic() - started
            self.failure_log.recovered()
            try:
                if self.on_committed is not None:
                    self.on_committed(queued, pending)
            except Exception:  # delivery hand-over must not kill the writer; the poller picks rows up
                log.exception("alarm write-behind: hand-over after commit failed")
            finally:
                with self._cond:
                    self._in_flight = False
                    self._cond.notify_all()
