"""Dispatch: route alerts through the routing tree into groups, and flush groups on time.

A group is (route, values of the route's ``group_by`` labels).  It first
flushes ``group_wait`` after its first alert, then every ``group_interval``;
each flush asks the notification log whether anything is news (new firing
alerts, resolutions, or ``repeat_interval`` elapsed).  However many alerts a
storm raises, a group sends at most one notification per ``group_interval``.
"""

import hashlib
import heapq

from saltops.alarms.matchers import matches_all
from saltops.alarms.model import FIRING, RESOLVED

MAX_ALERTS_PER_MESSAGE = 50


class Group:
    __slots__ = ("alerts", "flushed", "id", "key", "labels", "next_flush", "route")

    def __init__(self, route, key, labels, now):
        self.route = route
        self.key = key
        self.id = hashlib.sha256(key.encode()).hexdigest()[:40]
        self.labels = labels
        self.alerts = {}
        self.next_flush = now + route.group_wait
        self.flushed = False


class Notification:
    """One message for one receiver: Alertmanager's webhook payload (version 4) plus routing facts."""

    __slots__ = ("channels", "group_id", "payload", "receiver")

    def __init__(self, receiver, channels, group_id, payload):
        self.receiver = receiver
        self.channels = channels
        self.group_id = group_id
        self.payload = payload


def match_routes(route, labels):
    """The routes an alert goes to (Alertmanager's depth-first walk with ``continue``)."""
    found = []
    for child in route.routes:
        if matches_all(child.matchers, labels):
            sub = match_routes(child, labels)
            found.extend(sub)
            if not child.cont:
                break
    return found or [route]


def _common(dicts):
    if not dicts:
        return {}
    first = dicts[0]
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in dicts[1:])}


class Dispatcher:
    def __init__(self, ruleset, external_url=""):
        self.ruleset = ruleset
        self.groups = {}
        self.external_url = external_url

    def add(self, alert, now):
        """Put a firing (or resolved, when restoring) alert into its groups."""
        labels = alert.labels
        for route in match_routes(self.ruleset.route, labels):
            if "..." in route.group_by:
                group_labels = dict(labels)
            else:
                group_labels = {name: labels.get(name, "") for name in route.group_by}
            key = route.path + ":{" + ",".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}"
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = Group(route, key, group_labels, now)
            group.alerts[alert.fingerprint] = alert

    def due(self, now):
        return [g for g in self.groups.values() if g.next_flush <= now]

    def next_due(self):
        return min((g.next_flush for g in self.groups.values()), default=None)

    def flush(self, group, nflog, muted, now):
        """Flush one group; return (notification or None, resolved alerts now reported).

        ``muted(alert)`` tells whether a firing alert is silenced or inhibited; None when nothing can be.
        """
        receiver = self.ruleset.receivers[group.route.receiver]
        visible, hidden, resolved = [], [], []
        for alert in group.alerts.values():
            if alert.state == FIRING:
                (hidden if muted is not None and muted(alert) else visible).append(alert)
            elif alert.state == RESOLVED:
                resolved.append(alert)
        decision = nflog.decide(
            group.id, receiver.name,
            [a.fingerprint for a in visible], [a.fingerprint for a in hidden],
            [a.fingerprint for a in resolved], group.route.repeat_interval, receiver.send_resolved, now,
        )
        note = None
        entry = nflog.get(group.id, receiver.name)
        if decision.send:
            shown = [a for a in visible if a.fingerprint in decision.firing]
            shown += [a for a in resolved if a.fingerprint in decision.resolved]
            if shown:
                known = entry.firing if entry is not None else frozenset()
                note = Notification(receiver.name, list(receiver.channels), group.id,
                                    self._payload(group, receiver.name, shown, known))
                nflog.set(group.id, receiver.name, group.key, decision.known,
                          [a.fingerprint for a in resolved], now)
        if note is None and (entry is None or entry.firing != decision.known):
            if entry is not None or decision.known:
                nflog.set(group.id, receiver.name, group.key, decision.known,
                          [a.fingerprint for a in resolved], entry.ts if entry else now)
        for alert in resolved:
            del group.alerts[alert.fingerprint]
        group.next_flush = now + group.route.group_interval
        group.flushed = True
        if not group.alerts:
            del self.groups[group.key]
        return note, resolved

    def _payload(self, group, receiver, alerts, known=frozenset()):
        # What is news comes first (new firing, then resolved, then still firing), so that
        # a message cut to max_alerts in a storm still lists what changed.  Each part is in
        # (host, fingerprint) order, and only what the message shows is sorted: in a storm
        # the group holds thousands of alerts and a message lists max_alerts of them.
        limit = getattr(self.ruleset.receivers.get(receiver), "max_alerts", MAX_ALERTS_PER_MESSAGE)
        news, resolved, known_firing = [], [], []
        for a in alerts:
            if a.state == RESOLVED:
                resolved.append(a)
            elif a.fingerprint not in known:
                news.append(a)
            else:
                known_firing.append(a)
        shown = []
        for part in (news, resolved, known_firing):
            room = limit - len(shown) if limit else len(part)
            if limit and room <= 0:
                break
            if room < len(part):
                shown.extend(heapq.nsmallest(room, part, key=_order))
            else:
                shown.extend(sorted(part, key=_order))
        firing = len(alerts) - len(resolved)
        return {
            "version": "4",
            "groupKey": group.key,
            "truncatedAlerts": len(alerts) - len(shown),
            "status": FIRING if firing else RESOLVED,
            "receiver": receiver,
            "groupLabels": dict(group.labels),
            "commonLabels": _common([a.labels for a in alerts]),
            "commonAnnotations": _common([a.annotations for a in alerts]),
            "externalURL": self.external_url,
            "alerts": [a.webhook(self.external_url) for a in shown],
            "counts": {"firing": firing, "resolved": len(resolved)},
        }


def _order(alert):
    return (alert.labels.get("host", ""), alert.fingerprint)
