"""Evaluate: samples against rules -> alerts (pending, firing, resolved).

State lives in memory; every change is recorded in ``changed`` (alerts to
write behind) and ``transitions`` (what dispatch and history need).  Time is
passed in, so the behaviour is tested without sleeping.

What time does (a pending alert's ``for`` elapsing, an alert going stale, a
host falling silent) is kept in two heaps of deadlines, so a tick costs what
is due, not what is in memory: with tens of thousands of firing alarms a
tick that has nothing to do costs nothing.  The heaps are lazy: an entry is
never later than the deadline it stands for (a sample only moves deadlines
later), and when it comes due the real deadline is computed again and the
entry put back if it has moved.
"""

import collections
import heapq
import itertools
import logging
import urllib.parse

from saltops.alarms.matchers import fingerprint, matches_all
from saltops.alarms.model import ABSENT, BEACON, EXTERNAL, FIRING, PENDING, RESOLVED, Alert, render

log = logging.getLogger(__name__)

_MISSING = object()
MAX_LABEL = 128
QUIET_STATUSES = ("maintenance", "offline", "decommissioned")


class BadSample(Exception):
    """A sample matched a rule but its fields are unusable (``reason`` for the metric)."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def lookup(data, path):
    """``a.b.c`` into nested mappings; ``_MISSING`` when absent."""
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return _MISSING
    return cur


def _scalar(value):
    return isinstance(value, (str, int, float, bool)) or value is None


class Evaluator:
    """The rule engine's in-memory state."""

    def __init__(self, ruleset, labels=None, started=0.0):
        self.ruleset = ruleset
        self.labels = labels or (lambda _host: {})
        # name or address -> CMDB hostname (None: unknown); the labels provider's when it has one.
        self.resolve = getattr(labels, "resolve", None) or (lambda _name: None)
        self.alerts = {}  # fingerprint -> Alert (active, and resolved ones not yet reported)
        self.hosts = {}  # hostname -> last time anything valid came from it
        self.hosts_dirty = set()
        self.changed = {}  # fingerprint -> Alert, to write behind
        self.transitions = []  # (alert, event, ts)
        self.started = started
        self._fp_cache = {}
        self._absent_hosts = set()
        self._alert_due = []  # (deadline, seq, alert): pending `for`, staleness, Alertmanager ends_at
        self._host_due = []  # (deadline, seq, host): silence for the absent rules
        self._host_scheduled = set()
        self._seq = itertools.count()
        # (state, severity) -> how many alerts in ``alerts``: the alarms gauge, without a walk per scrape.
        self.census = collections.Counter()

    # -- loading --------------------------------------------------------------------------
    def restore(self, alerts, hosts):
        """Take back the state a previous run persisted."""
        rules = {r.name: r for r in self.ruleset.rules}
        for alert in alerts:
            rule = rules.get(alert.rule)
            if rule is not None:
                alert.for_ = rule.for_
                alert.resolve_after = rule.resolve_after or self.ruleset.resolve_after
            else:
                alert.resolve_after = self.ruleset.resolve_after
            self._put(alert)
            self._schedule(alert)
            if alert.source == ABSENT and alert.state == FIRING:
                self._absent_hosts.add(alert.labels.get("host"))
        self.hosts.update(hosts)
        self.reschedule_hosts()

    # -- membership (kept in step with the census) -----------------------------------------
    def _put(self, alert):
        previous = self.alerts.get(alert.fingerprint)
        if previous is not None:
            self.census[(previous.state, previous.labels.get("severity", ""))] -= 1
        self.alerts[alert.fingerprint] = alert
        self.census[(alert.state, alert.labels.get("severity", ""))] += 1

    def _remove(self, alert):
        if self.alerts.get(alert.fingerprint) is alert:
            del self.alerts[alert.fingerprint]
            self.census[(alert.state, alert.labels.get("severity", ""))] -= 1
            return True
        return False

    def _set_state(self, alert, state):
        if self.alerts.get(alert.fingerprint) is alert:
            severity = alert.labels.get("severity", "")
            self.census[(alert.state, severity)] -= 1
            self.census[(state, severity)] += 1
        alert.state = state

    def counts(self):
        """{(state, severity): alerts in memory}, for the metrics."""
        return {key: n for key, n in list(self.census.items()) if n > 0}

    # -- deadlines ------------------------------------------------------------------------
    def _deadline(self, alert):
        """When :meth:`tick` must look at ``alert`` next (None: only a sample can change it)."""
        if alert.state == RESOLVED or alert.source == ABSENT:
            return None
        due = max(alert.last_seen, self.started) + alert.resolve_after
        if alert.source == EXTERNAL and alert.ends_at:
            due = min(due, alert.ends_at)
        if alert.state == PENDING:
            due = min(due, alert.active_since + alert.for_)
        return due

    def _schedule(self, alert):
        due = self._deadline(alert)
        if due is not None:
            heapq.heappush(self._alert_due, (due, next(self._seq), alert))

    def _schedule_host(self, host, due):
        heapq.heappush(self._host_due, (due, next(self._seq), host))
        self._host_scheduled.add(host)

    def use_rules(self, ruleset):
        """Evaluate with new rules from now on, keeping every alert and host in memory."""
        self.ruleset = ruleset
        self._fp_cache.clear()  # keyed by rule name: a renamed or re-keyed rule must not reuse an id
        self.reschedule_hosts()  # the absent rules (and their periods) may have changed

    def reschedule_hosts(self):
        """Build the host deadlines again (after a restore, or when the absent rules changed)."""
        self._host_due = []
        self._host_scheduled = set()
        if self.ruleset.absent:
            shortest = min(rule.absent_for for rule in self.ruleset.absent)
            for host, last in self.hosts.items():
                self._schedule_host(host, max(last, self.started) + shortest)

    # -- samples ----------------------------------------------------------------------------
    def observe(self, sample):
        """Apply one sample; raise :class:`BadSample` if a matching rule cannot use it."""
        host = sample.host
        ts = sample.ts
        prev = self.hosts.get(host)
        self.hosts[host] = ts
        if prev is None or ts - prev >= 10.0:
            self.hosts_dirty.add(host)
        if host not in self._host_scheduled and self.ruleset.absent:
            self._schedule_host(host, max(ts, self.started) + min(r.absent_for for r in self.ruleset.absent))
        if host in self._absent_hosts:
            self._clear_absent(host, ts)
        if sample.kind == "beacon":
            rules = self.ruleset.by_beacon.get(sample.name, ())
        elif sample.kind == "tag":
            rules = [r for r in self.ruleset.by_tag if r.tag_matches(sample.tag)]
        else:
            return 0
        applied = 0
        error = None
        for rule in rules:
            if rule.tag and sample.kind == "beacon" and not rule.tag_matches(sample.tag):
                continue
            try:
                if self._apply(rule, sample):
                    applied += 1
            except BadSample as err:
                error = err
        if error is not None and not applied:
            raise error
        return applied

    def _apply(self, rule, sample):
        data = sample.data
        if rule.where:
            view = {k: _text(v) for k, v in data.items() if _scalar(v)}
            view["tag_rest"] = sample.rest
            if not matches_all(rule.where, view):
                return False
        key_labels = {}
        for label, path in rule.key:
            value = lookup(data, path)
            if value is _MISSING:
                raise BadSample("missing_field", f"{rule.name}: no {path!r} in the event")
            if not _scalar(value):
                raise BadSample("bad_value", f"{rule.name}: {path!r} is not a scalar")
            key_labels[label] = _text(value)[:MAX_LABEL]
        if rule.key_from_tag:
            if not sample.rest:
                raise BadSample("missing_field", f"{rule.name}: the tag has nothing after the beacon name")
            key_labels[rule.key_from_tag] = sample.rest[:MAX_LABEL]
        value = None
        if rule.field:
            path = rule.field
            if "{" in path:
                path = render(path, key_labels)
            value = lookup(data, path)
            if value is _MISSING:
                raise BadSample("missing_field", f"{rule.name}: no {path!r} in the event")
            if not _scalar(value):
                raise BadSample("bad_value", f"{rule.name}: {path!r} is not a scalar")
        active = rule.condition(value)
        if active is None:
            raise BadSample("bad_value", f"{rule.name}: {value!r} is not a number")
        numeric = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        ident_key = (rule.name, sample.host, tuple(key_labels.items()))
        fp = self._fp_cache.get(ident_key)
        if fp is None:
            ident = {"alertname": rule.name, "host": sample.host, **key_labels}
            fp = fingerprint(ident)
            if len(self._fp_cache) < 200000:
                self._fp_cache[ident_key] = fp
        alert = self.alerts.get(fp)
        ts = sample.ts
        if active:
            if alert is None or alert.state == RESOLVED:
                alert = self._new(rule, sample.host, key_labels, fp, ts, numeric)
            alert.last_seen = ts
            alert.value = numeric
            if alert.state == PENDING and ts - alert.active_since >= rule.for_:
                alert.annotations = self._annotations(rule, alert.labels, numeric)
                self._fire(alert, ts)
            self.changed[fp] = alert
        elif alert is not None:
            if alert.state == PENDING:
                self._drop(alert)
            elif alert.state == FIRING:
                alert.value = numeric
                self._resolve(alert, ts)
        return True

    def _new(self, rule, host, key_labels, fp, ts, value, source=BEACON):
        labels = {}
        labels.update(self.labels(host))
        labels.update(rule.labels)
        labels.update(key_labels)
        labels["alertname"] = rule.name
        labels["host"] = host
        labels["severity"] = rule.severity
        annotations = self._annotations(rule, labels, value)
        alert = Alert(fp, rule.name, source, labels, annotations, PENDING, ts, for_=rule.for_,
                      resolve_after=rule.resolve_after or self.ruleset.resolve_after, value=value,
                      active_since=ts)
        previous = self.alerts.get(fp)
        if previous is not None and previous.pending_resolve:
            # Fired again before its resolution was reported: the group sees one alert.
            alert.pending_resolve = False
        self._put(alert)
        self.changed[fp] = alert
        self.transitions.append((alert, PENDING, ts))
        self._schedule(alert)
        return alert

    @staticmethod
    def _annotations(rule, labels, value):
        if not rule.annotations:
            return {}
        values = dict(labels)
        values["value"] = value if value is not None else ""
        return {name: render(text, values) for name, text in rule.annotations.items()}

    def _fire(self, alert, ts):
        self._set_state(alert, FIRING)
        alert.fired_at = ts
        self.changed[alert.fingerprint] = alert
        self.transitions.append((alert, FIRING, ts))

    def _resolve(self, alert, ts):
        self._set_state(alert, RESOLVED)
        alert.resolved_at = ts
        alert.pending_resolve = True
        self.changed[alert.fingerprint] = alert
        self.transitions.append((alert, RESOLVED, ts))

    def _drop(self, alert):
        self._set_state(alert, RESOLVED)
        alert.resolved_at = alert.last_seen
        alert.pending_resolve = False
        self.changed[alert.fingerprint] = alert
        self._remove(alert)

    def forget(self, alert):
        """Dispatch reported the resolution: the alert leaves memory (its row stays)."""
        alert.pending_resolve = False
        current = self.alerts.get(alert.fingerprint)
        if current is alert:
            self._remove(alert)
            self.changed[alert.fingerprint] = alert
        elif current is None:
            self.changed.setdefault(alert.fingerprint, alert)

    # -- alerts from Alertmanager ------------------------------------------------------------
    def external(self, labels, annotations, status, starts_at, ends_at, now):
        """An alert from Prometheus/Alertmanager, routed like our own.

        Its fingerprint lives in its own namespace: a ``resolved`` that
        carries a beacon alarm's labels finds no beacon alarm to resolve.
        """
        fp = fingerprint(labels, namespace=EXTERNAL)
        alert = self.alerts.get(fp)
        if status == RESOLVED:
            if alert is not None and alert.state == FIRING:
                self._resolve(alert, ends_at or now)
            return alert
        named = source_host(labels)
        host = (self.resolve(named) or named) if named else None
        full = dict(self.labels(host)) if host else {}
        full.update(labels)
        if host:
            # The same `host` a beacon alarm of that machine carries, so that silences and
            # `equal: [host]` inhibitions treat both alike (the source's own labels stay as sent).
            full["host"] = host
        full.setdefault("severity", "warning")
        if alert is None or alert.state == RESOLVED:
            alert = Alert(fp, full.get("alertname", "external"), EXTERNAL, full,
                          dict(annotations), PENDING, now, resolve_after=self.ruleset.resolve_after,
                          active_since=starts_at or now)
            self._put(alert)
            self.transitions.append((alert, PENDING, now))
            self._fire(alert, now)
        alert.annotations = dict(annotations)
        alert.last_seen = now
        alert.ends_at = ends_at
        self.changed[fp] = alert
        self._schedule(alert)  # ends_at may have moved earlier
        return alert

    # -- time -----------------------------------------------------------------------------
    def tick(self, now):
        """Promote pending alerts, resolve stale ones, raise/clear absent-host alarms."""
        # After a restart, give every host and alert a full period before calling it stale.
        floor = self.started
        heap = self._alert_due
        due = []
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap))
        # Alerts come due in deadline order; ties keep the order they were scheduled in.
        for _when, _seq, alert in due:
            if self.alerts.get(alert.fingerprint) is not alert:
                continue  # forgotten, or replaced by a newer alert of the same identity
            if alert.state == RESOLVED or alert.source == ABSENT:
                continue
            seen = max(alert.last_seen, floor)
            if alert.source == EXTERNAL and alert.ends_at and alert.ends_at < now:
                self._resolve(alert, now)
                continue
            if now - seen > alert.resolve_after:
                if alert.state == PENDING:
                    self._drop(alert)
                else:
                    self._resolve(alert, now)
                continue
            if alert.state == PENDING and now - alert.active_since >= alert.for_:
                self._fire(alert, now)
            self._schedule(alert)
        if self.ruleset.absent:
            self._tick_absent(now, floor)

    def _tick_absent(self, now, floor):
        heap = self._host_due
        due = []
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap)[2])
        for host in due:
            self._host_scheduled.discard(host)
            last = self.hosts.get(host)
            if last is None:
                continue  # forgotten
            waiting = []  # deadlines of absent rules not yet due for this host
            quiet = False
            for rule in self.ruleset.absent:
                if now - max(last, floor) <= rule.absent_for:
                    waiting.append(max(last, floor) + rule.absent_for)
                    continue
                labels = self.labels(host)
                if labels.get("status") in QUIET_STATUSES:
                    quiet = True  # looked at again every tick, as its CMDB status may change
                    continue
                ident_key = (rule.name, host, ())
                fp = self._fp_cache.get(ident_key) or fingerprint({"alertname": rule.name, "host": host})
                alert = self.alerts.get(fp)
                if alert is not None and alert.state != RESOLVED:
                    continue
                alert = self._new(rule, host, {}, fp, now, None, source=ABSENT)
                alert.last_seen = last
                alert.active_since = last
                self._fire(alert, now)
                self._absent_hosts.add(host)
            if quiet:
                self._schedule_host(host, now)
            elif waiting:
                self._schedule_host(host, min(waiting))
            # Otherwise every absent rule fired: the host's next sample schedules it again.

    def _clear_absent(self, host, ts):
        self._absent_hosts.discard(host)
        for rule in self.ruleset.absent:
            fp = fingerprint({"alertname": rule.name, "host": host})
            alert = self.alerts.get(fp)
            if alert is not None and alert.state == FIRING:
                alert.last_seen = ts
                self._resolve(alert, ts)

    def firing(self):
        return [a for a in self.alerts.values() if a.state == FIRING]

    def take_changes(self):
        changed, self.changed = self.changed, {}
        transitions, self.transitions = self.transitions, []
        hosts = {h: self.hosts[h] for h in self.hosts_dirty}
        self.hosts_dirty = set()
        return changed, transitions, hosts

    def forget_host(self, host):
        self.hosts.pop(host, None)
        self.hosts_dirty.discard(host)
        self._host_scheduled.discard(host)


# Labels that name the machine an external alert is about, in the order they are trusted.
HOST_LABELS = ("host", "hostname", "nodename", "instance")


def host_part(value):
    """The host an address names: ``db01:9100`` -> ``db01``, ``[2001:db8::5]:9100`` -> ``2001:db8::5``.

    A bare IPv6 address (more than one colon, no brackets) is kept whole; a URL (a
    blackbox probe's ``instance``) gives its host.
    """
    value = value.strip()
    if "://" in value:
        try:
            return urllib.parse.urlsplit(value).hostname or ""
        except ValueError:
            return ""
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else ""
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def source_host(labels):
    """The machine an external alert names (labels ``host``, ``hostname``, ``nodename``, ``instance``), or None."""
    for key in HOST_LABELS:
        value = labels.get(key)
        if isinstance(value, str) and value.strip():
            found = host_part(value)[:MAX_LABEL]
            if found:
                return found
    return None


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)
