"""Inhibition: a firing *source* alert mutes *target* alerts that share the ``equal`` labels.

Example: ``HostSilent`` on a host mutes that host's disk and load alarms.
The index is rebuilt from the firing alerts once per evaluation cycle, so a
check is one set lookup per rule.
"""

from saltops.alarms.matchers import matches_all


class Inhibitor:
    def __init__(self, rules):
        self.rules = list(rules)
        self._index = [dict() for _ in self.rules]  # per rule: equal-values -> {source fingerprints}

    def rebuild(self, firing):
        self._index = []
        for rule in self.rules:
            index = {}
            for alert in firing:
                if matches_all(rule.source, alert.labels):
                    key = tuple(alert.labels.get(name, "") for name in rule.equal)
                    index.setdefault(key, set()).add(alert.fingerprint)
            self._index.append(index)

    def active(self):
        """Is any source alert firing (could anything be muted)?"""
        return any(self._index)

    def muted(self, alert):
        """The fingerprint of an alert that inhibits ``alert``, or None."""
        for rule, index in zip(self.rules, self._index):
            if not index or not matches_all(rule.target, alert.labels):
                continue
            key = tuple(alert.labels.get(name, "") for name in rule.equal)
            sources = index.get(key)
            if sources and (len(sources) > 1 or alert.fingerprint not in sources):
                return next(iter(sources - {alert.fingerprint}))
        return None
