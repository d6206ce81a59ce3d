"""The pipeline in memory: ingest -> evaluate -> dispatch -> inhibit/silence -> nflog.

:meth:`Pipeline.tick` returns a :class:`Batch`: everything that changed since
the last tick (alert rows, history, hosts seen, notification-log entries and
new notifications).  The caller writes it in one transaction
(:mod:`saltops.alarms.persist`) and only then hands the notifications to
delivery; if the write fails, :meth:`Pipeline.requeue` takes the batch back so
the next tick writes it again.
"""

import logging
import time

from saltops.alarms.dispatch import Dispatcher
from saltops.alarms.evaluate import BadSample, Evaluator
from saltops.alarms.ingest import Rejected
from saltops.alarms.inhibit import Inhibitor
from saltops.alarms.model import FIRING, RESOLVED, parse_iso
from saltops.alarms.nflog import NotificationLog
from saltops.alarms.silence import Silences

log = logging.getLogger(__name__)


class Batch:
    __slots__ = ("alerts", "ended_acks", "history", "hosts", "nflog", "notifications")

    def __init__(self, alerts, history, hosts, nflog, notifications, ended_acks):
        self.alerts = alerts  # fingerprint -> Alert
        self.history = history  # [dict]
        self.hosts = hosts  # hostname -> last_seen
        self.nflog = nflog  # (group_id, receiver) -> Entry
        self.notifications = notifications  # [Notification]
        self.ended_acks = ended_acks  # {fingerprint}

    def __bool__(self):
        return bool(self.alerts or self.history or self.hosts or self.nflog or self.notifications
                    or self.ended_acks)


class Counters:
    """Figures the pipeline keeps; the engine exports them as Prometheus metrics."""

    def __init__(self):
        self.accepted = 0
        self.ignored = 0
        self.rejected = {}
        self.transitions = {}
        self.muted = {"silence": 0, "inhibit": 0}
        self.notifications = 0

    def reject(self, reason):
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


class Pipeline:
    def __init__(self, ruleset, ingest, labels=None, started=None, external_url=""):
        self.ruleset = ruleset
        self.ingest = ingest
        self.started = time.time() if started is None else started
        self.evaluator = Evaluator(ruleset, labels, started=self.started)
        self.dispatcher = Dispatcher(ruleset, external_url=external_url)
        self.inhibitor = Inhibitor(ruleset.inhibit_rules)
        self.silences = Silences()
        self.nflog = NotificationLog()
        self.counters = Counters()
        self._history = []
        self._notifications = []
        self._ended_acks = set()
        self._inhibit_stale = True

    # -- state from the database ------------------------------------------------------------
    def restore(self, alerts, hosts, nflog_entries, now):
        self.evaluator.restore(alerts, hosts)
        for key, entry in nflog_entries.items():
            self.nflog.entries[key] = entry
        for alert in alerts:
            if alert.state == FIRING or (alert.state == RESOLVED and alert.pending_resolve):
                self.dispatcher.add(alert, now)
        self._inhibit_stale = True

    def reload(self, ruleset):
        """Switch to new rules, keeping alerts; groups are rebuilt on the new routing tree."""
        self.ruleset = ruleset
        self.evaluator.use_rules(ruleset)
        self.inhibitor = Inhibitor(ruleset.inhibit_rules)
        old = self.dispatcher
        self.dispatcher = Dispatcher(ruleset, external_url=old.external_url)
        now = time.time()
        for group in old.groups.values():
            for alert in group.alerts.values():
                self.dispatcher.add(alert, now)
        for group in self.dispatcher.groups.values():
            # Keep the old timing: a group that flushed before waits group_interval, not group_wait.
            previous = old.groups.get(group.key)
            if previous is not None:
                group.next_flush = previous.next_flush
        self._inhibit_stale = True

    # -- input --------------------------------------------------------------------------------
    def event(self, tag, data):
        """One master-bus event; returns True when it was used, False when ignored or rejected."""
        try:
            sample = self.ingest.check(tag, data)
        except Rejected as err:
            self.counters.reject(err.reason)
            log.debug("rejected event %r: %s", tag if isinstance(tag, str) else type(tag), err)
            return False
        except Exception as err:  # never let one event stop the loop
            self.counters.reject("garbage")
            log.debug("unreadable event: %s", err)
            return False
        if sample is None:
            self.counters.ignored += 1
            return False
        try:
            self.evaluator.observe(sample)
        except BadSample as err:
            self.counters.reject(err.reason)
            return False
        self.counters.accepted += 1
        return True

    def alertmanager(self, payload, now=None):
        """An Alertmanager webhook payload (version 4); returns how many alerts were taken."""
        now = time.time() if now is None else now
        alerts = validate_alertmanager(payload)
        for labels, annotations, status, starts, ends in alerts:
            self.evaluator.external(labels, annotations, status, starts, ends, now)
        self.counters.accepted += len(alerts)
        return len(alerts)

    # -- time ---------------------------------------------------------------------------------
    def _muted(self, now):
        if not self.silences.items and not self.inhibitor.active():
            return None  # nothing can mute: a storm's flush need not ask for every alert

        def muted(alert):
            if self.silences.muted_by(alert, now) is not None:
                self.counters.muted["silence"] += 1
                return True
            if self.inhibitor.muted(alert) is not None:
                self.counters.muted["inhibit"] += 1
                return True
            return False

        return muted

    def tick(self, now=None):
        now = time.time() if now is None else now
        ev = self.evaluator
        ev.tick(now)
        for alert, event, ts in ev.transitions:
            self._history.append({"fingerprint": alert.fingerprint, "rule": alert.rule, "event": event,
                                  "ts": ts, "labels": alert.labels, "value": alert.value, "actor": None})
            self.counters.transitions[event] = self.counters.transitions.get(event, 0) + 1
            if event == FIRING:
                self.dispatcher.add(alert, now)
                self._inhibit_stale = True
            elif event == RESOLVED:
                self._ended_acks.add(alert.fingerprint)
                self._inhibit_stale = True
                if alert.fired_at is None:
                    ev.forget(alert)
        ev.transitions = []
        if self._inhibit_stale:
            self.inhibitor.rebuild(ev.firing())
            self._inhibit_stale = False
        muted = self._muted(now)
        for group in self.dispatcher.due(now):
            note, reported = self.dispatcher.flush(group, self.nflog, muted, now)
            if note is not None:
                self._notifications.append(note)
                self.counters.notifications += 1
            for alert in reported:
                ev.forget(alert)
        changed, _transitions, hosts = ev.take_changes()
        batch = Batch(changed, self._history, hosts, self.nflog.take_dirty(), self._notifications,
                      self._ended_acks)
        self._history, self._notifications, self._ended_acks = [], [], set()
        return batch

    def requeue(self, batch):
        """Take back a batch whose write failed; newer changes win."""
        ev = self.evaluator
        for fp, alert in batch.alerts.items():
            ev.changed.setdefault(fp, alert)
        self._history = batch.history + self._history
        for host in batch.hosts:
            ev.hosts_dirty.add(host)
        for key, entry in batch.nflog.items():
            self.nflog.dirty.setdefault(key, entry)
        self._notifications = batch.notifications + self._notifications
        self._ended_acks |= batch.ended_acks


_AM_STATUSES = (FIRING, RESOLVED)


def validate_alertmanager(payload, max_alerts=1000):
    """Check an Alertmanager webhook body; return [(labels, annotations, status, starts, ends)].

    Raises ValueError with a readable message on anything malformed.  The
    message names the place of the fault, never a value from the payload: it
    goes back to the sender and into logs.
    """
    if not isinstance(payload, dict):
        raise ValueError("the body must be a JSON object (Alertmanager webhook payload)")
    version = payload.get("version")
    if version != "4":
        raise ValueError('unsupported webhook payload version (expected "4")')
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise ValueError("'alerts' must be a list")
    if len(alerts) > max_alerts:
        raise ValueError(f"at most {max_alerts} alerts per request")
    out = []
    for idx, item in enumerate(alerts):
        if not isinstance(item, dict):
            raise ValueError(f"alerts[{idx}] must be an object")
        labels = item.get("labels")
        if not isinstance(labels, dict) or not labels.get("alertname"):
            raise ValueError(f"alerts[{idx}].labels must be an object with an alertname")
        for name, value in labels.items():
            if not isinstance(name, str) or not isinstance(value, str) or len(name) > 128 or len(value) > 1024:
                raise ValueError(f"alerts[{idx}].labels: names and values are strings (<=1024 chars)")
        annotations = item.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise ValueError(f"alerts[{idx}].annotations must map strings to strings")
        status = item.get("status", FIRING)
        if status not in _AM_STATUSES:
            raise ValueError(f"alerts[{idx}].status must be firing or resolved")
        try:
            starts = parse_iso(item.get("startsAt"))
            ends = parse_iso(item.get("endsAt"))
        except ValueError:
            raise ValueError(f"alerts[{idx}]: bad timestamp in startsAt or endsAt (RFC 3339 expected)") from None
        out.append((dict(labels), {k: v[:4096] for k, v in annotations.items()}, status, starts, ends))
    return out
