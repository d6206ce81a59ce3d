"""A recurring failure in the master log at a bounded rate.

A loop that retries every second against a database with a full disk would
otherwise write a line a second per thread for as long as the outage lasts.
:class:`FailureLog` logs the first failure at once, then at most one line per
``interval`` saying how many failures it held back, and one line when the
operation works again.  A full disk is logged as an error (someone has to act),
any other failure as a warning.
"""

import logging
import threading
import time

from saltops.errors import StoreFull


class FailureLog:
    def __init__(self, logger, what, interval=60.0, clock=time.monotonic, clean=None):
        self.logger = logger
        self.clean = clean  # text -> text, e.g. to strip secrets before the line is written
        self.what = what  # "alarm state not written", "notification outbox not written"...
        self.interval = float(interval)
        self.clock = clock
        self.failures = 0  # every failure since this object was made
        self.lines = 0  # failure lines written to the log
        self._lock = threading.Lock()
        self._since = None  # when the current run of failures began (None: no failure run)
        self._held = 0  # failures not logged since the last line
        self._last_line = None

    def failed(self, err, detail=""):
        """Count a failure; log it unless a line was written less than ``interval`` ago."""
        now = self.clock()
        with self._lock:
            self.failures += 1
            if self._since is None:
                self._since = now
            if self._last_line is not None and now - self._last_line < self.interval:
                self._held += 1
                return False
            held, self._held, self._last_line = self._held, 0, now
            self.lines += 1
        level = logging.ERROR if isinstance(err, StoreFull) else logging.WARNING
        more = f" ({held} more since the last report)" if held else ""
        # The first line only: a driver error goes on with the statement and its parameters.
        text = (str(err).splitlines() or [""])[0][:500]
        if self.clean is not None:
            text = self.clean(text)
        self.logger.log(level, "%s%s: %s%s", self.what, detail, text, more)
        return True

    def recovered(self):
        """The operation worked: log the end of a failure run once."""
        with self._lock:
            if self._since is None:
                return False
            began, self._since, self._held, self._last_line = self._since, None, 0, None
        self.logger.warning("%s: works again after %.0f s of failures", self.what, self.clock() - began)
        return True

    @property
    def failing(self):
        with self._lock:
            return self._since is not None
