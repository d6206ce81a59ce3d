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
* before firing ``recovered`` that process also leaves a recovery note
  (``<snapshot_file>.recovered``); the reactor's ``cmdb.refresh_after_outage``
  takes it with :meth:`OutageMarker.claim_recovery` and refreshes every pillar
  only when it got one, so a forged ``recovered`` event refreshes nothing.

``since`` is also the ``stale_since`` every worker shows in the pillar, so all
minions agree on when the outage began.
"""

import datetime
import fcntl
import json
import logging
import os
from contextlib import contextmanager

from saltops.saltcalls import SaltUnreachable

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
        self.recovery_path = snapshot_file + ".recovered"

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

    def _write(self, data, path=None):
        path = path or self.path
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)

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
            self._write({"since": data["since"], "until": now}, self.recovery_path)
            if not _fire(fire, RECOVERED_TAG, payload):
                # Keep the outage open so the recovery is announced by a later check.
                self._write(data)
                _unlink(self.recovery_path)
                return None
            return data["since"]

    def claim_recovery(self):
        """Take the note of an outage that ended: ``{"since", "until"}`` (UNIX times) once, else ``None``.

        ``None`` when no outage ended since the last claim, or while an outage
        is open.  Whoever gets the note acts on the recovery; every other
        caller, and any later one, gets ``None``.
        """
        with self._locked():
            if os.path.exists(self.path):
                return None
            try:
                with open(self.recovery_path, encoding="utf-8") as fh:
                    note = json.load(fh)
            except FileNotFoundError:
                return None
            except (OSError, ValueError) as err:
                log.warning("ignoring unreadable CMDB recovery note %s: %s", self.recovery_path, err)
                note = None
            _unlink(self.recovery_path)
            if not isinstance(note, dict) or not isinstance(note.get("since"), (int, float)):
                return None
            return note

    def give_back(self, note):
        """Return a claimed ``note`` whose refresh could not be published, for the next claim.

        Unless another outage opened meanwhile (its own recovery will leave a
        note then): one refresh after that covers both.
        """
        with self._locked():
            if not os.path.exists(self.path) and not os.path.exists(self.recovery_path):
                self._write(note, self.recovery_path)


def refresh_after_outage(snapshot_file, calls):
    """Refresh every minion's pillar (``clean_cache``) once per outage this master recorded as ended.

    ``calls`` is a :class:`saltops.saltcalls.SaltCalls` (the runner builds it
    from Salt's clients).  Returns ``{jid, outage: {since, until}}``, or
    ``{jid: None, skipped}`` when :meth:`OutageMarker.claim_recovery` has no
    note to give: no outage ended since the last refresh, or one is open again.
    """
    marker = OutageMarker(snapshot_file)
    note = marker.claim_recovery()
    if note is None:
        return {"jid": None, "skipped": "no CMDB outage ended since the last refresh: nothing to do"}
    calls.progress("refreshing every minion's pillar after the CMDB outage")
    try:
        jid = calls.publish("*", "saltutil.refresh_pillar", kwarg={"clean_cache": True}, tgt_type="glob")
    except SaltUnreachable:
        # The master did not take the job: the next recovered event (or a manual call) retries.
        marker.give_back(note)
        raise
    return {"jid": jid, "outage": {"since": iso(note["since"]), "until": iso(note.get("until"))}}


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


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
