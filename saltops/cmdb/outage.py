"""The CMDB outage marker shared by every process of one master.

A master runs several worker processes, each with its own CMDB snapshot.  When
the database goes away, all of them notice, but the ``saltops/cmdb/unavailable``
event must be fired once per ``event_interval`` (not once per worker, and not
once per pillar render), and ``saltops/cmdb/recovered`` exactly once when the
database answers again.  They agree through a small JSON file beside the
snapshot file (``<snapshot_file>.outage``), changed under an ``flock``:

* the first process that fails writes ``{"since": t, "last_event": t}`` and
  fires ``unavailable``; later failures fire again only when ``last_event`` is
  older than ``event_interval``;
* the first process that reads the database again removes the file and fires
  ``recovered`` with the outage's start and length.  If firing fails the file
  is put back, so another process (or the next check) tries again.

``since`` is also the ``stale_since`` every worker shows in the pillar, so all
minions agree on when the outage began.
"""

import datetime
import fcntl
import json
import logging
import os
import threading
from contextlib import contextmanager

log = logging.getLogger(__name__)

UNAVAILABLE_TAG = "saltops/cmdb/unavailable"
RECOVERED_TAG = "saltops/cmdb/recovered"


def iso(ts):
    """UTC ISO 8601 for a UNIX timestamp (``2026-01-31T12:00:00Z``)."""
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class OutageMarker:
    """The shared outage state for one snapshot file."""

    def __init__(self, snapshot_file):
        self.path = snapshot_file + ".outage"
        self.lock_path = snapshot_file + ".lock"

    @contextmanager
    def _locked(self):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read(self):
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            if isinstance(data, dict) and isinstance(data.get("since"), (int, float)):
                return data
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable CMDB outage marker %s: %s", self.path, err)
        return None

    def _write(self, data):
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, self.path)

    def exists(self):
        """Cheap check (one ``stat``) used after every successful version check."""
        return os.path.exists(self.path)

    def since(self):
        """When the current outage began (UNIX time), or ``None``."""
        data = self._read()
        return data["since"] if data else None

    def failed(self, now, error, event_interval, fire, extra=None):
        """Record a failed database read; fire ``unavailable`` when due.

        Returns the outage's start time (shared by all processes).
        """
        with self._locked():
            data = self._read()
            due = False
            if data is None:
                data = {"since": now, "last_event": None, "events": 0}
                due = True
            elif data.get("last_event") is None or now - data["last_event"] >= event_interval:
                due = True
            if due:
                payload = {
                    "since": iso(data["since"]),
                    "error": str(error)[:500],
                    "pid": os.getpid(),
                    "events": data.get("events", 0) + 1,
                }
                payload.update(extra or {})
                if _fire(fire, UNAVAILABLE_TAG, payload):
                    data["last_event"] = now
                    data["events"] = data.get("events", 0) + 1
            self._write(data)
            return data["since"]

    def recovered(self, now, fire, extra=None):
        """The database answered: end the outage and fire ``recovered`` once.

        Returns the outage's start time if this call ended it, else ``None``.
        """
        if not self.exists():
            return None
        with self._locked():
            data = self._read()
            if data is None:
                # Another process ended it while we waited for the lock, or the
                # file was unreadable: remove whatever is there.
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                return None
            payload = {
                "since": iso(data["since"]),
                "until": iso(now),
                "down_seconds": round(now - data["since"], 3),
                "pid": os.getpid(),
            }
            payload.update(extra or {})
            os.unlink(self.path)
            if not _fire(fire, RECOVERED_TAG, payload):
                # Keep the outage open so the recovery is announced by a later check.
                self._write(data)
                return None
            return data["since"]


def _fire(fire, tag, data):
    if fire is None:
        # Nobody to tell (a process without an event bus): nothing to retry.
        return True
    try:
        result = fire(tag, data)
    except Exception as err:  # noqa: BLE001  (the event bus is not ours to break the pillar over)
        log.warning("could not fire %s: %s", tag, err)
        return False
    if result is False:
        log.warning("could not fire %s: the master event bus did not accept it", tag)
        return False
    return True


# Seconds to wait for the master event bus when firing an outage event.
FIRE_TIMEOUT = 5


def master_fire(opts):
    """A ``fire(tag, data)`` callable that puts events on the master's event bus.

    Each event is fired from a short-lived thread, which keeps the event
    client's own IO loop away from whatever loop the calling process runs
    (master workers, engines).  The callable returns ``True`` when the bus took
    the event.  Outage events are rare (rate-limited), so the thread costs nothing.
    """
    import salt.utils.event  # pylint: disable=import-outside-toplevel

    def fire(tag, data):
        result = {}

        def run():
            try:
                with salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False) as bus:
                    result["ok"] = bool(bus.fire_event(dict(data), tag))
            except Exception as err:  # noqa: BLE001  # pylint: disable=broad-except
                result["error"] = err

        thread = threading.Thread(target=run, name="saltops-cmdb-event", daemon=True)
        thread.start()
        thread.join(FIRE_TIMEOUT)
        if "error" in result:
            raise result["error"]
        return result.get("ok", False)

    return fire
