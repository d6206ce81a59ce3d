"""The alert: a label set with a state, and how it is shown to receivers."""

import datetime
import functools
import string

PENDING = "pending"
FIRING = "firing"
RESOLVED = "resolved"

# Where an alert comes from (``Alert.source``, the ``source`` column).  The
# pipeline's own alarms are raised from minion events it validated (beacons
# and tag rules) or from a host falling silent; external ones arrive on the
# Alertmanager webhook and only ever notify: they never reach remediation and
# never share a fingerprint with the pipeline's own (see matchers.fingerprint).
BEACON = "beacon"
ABSENT = "absent"
EXTERNAL = "prometheus"
PIPELINE_SOURCES = (BEACON, ABSENT)


class Alert:
    """One alarm identity (``fingerprint``) and its current state."""

    __slots__ = (
        "active_since",
        "annotations",
        "ends_at",
        "fingerprint",
        "fired_at",
        "for_",
        "labels",
        "last_seen",
        "pending_resolve",
        "resolve_after",
        "resolved_at",
        "rule",
        "source",
        "state",
        "value",
    )

    def __init__(self, fingerprint, rule, source, labels, annotations, state, last_seen, for_=0.0,
                 resolve_after=300.0, value=None, active_since=None, fired_at=None, resolved_at=None,
                 ends_at=None, pending_resolve=False):
        self.fingerprint = fingerprint
        self.rule = rule
        self.source = source
        self.labels = labels
        self.annotations = annotations
        self.state = state
        self.value = value
        self.active_since = active_since
        self.fired_at = fired_at
        self.resolved_at = resolved_at
        self.last_seen = last_seen
        self.ends_at = ends_at
        self.pending_resolve = pending_resolve
        self.for_ = for_
        self.resolve_after = resolve_after

    def match_labels(self):
        """The labels matchers see: the alert's own plus its ``fingerprint``."""
        out = dict(self.labels)
        out["fingerprint"] = self.fingerprint
        return out

    def to_row(self):
        return {
            "fingerprint": self.fingerprint, "rule": self.rule, "source": self.source,
            "labels": self.labels, "annotations": self.annotations, "state": self.state,
            "value": self.value, "active_since": self.active_since, "fired_at": self.fired_at,
            "resolved_at": self.resolved_at, "last_seen": self.last_seen, "ends_at": self.ends_at,
            "pending_resolve": bool(self.pending_resolve),
        }

    def webhook(self, external_url=""):
        """This alert as an element of Alertmanager's webhook ``alerts`` list."""
        starts = self.fired_at or self.active_since or self.last_seen
        return {
            "status": RESOLVED if self.state == RESOLVED else FIRING,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": iso(starts),
            "endsAt": iso(self.resolved_at) if self.state == RESOLVED else "0001-01-01T00:00:00Z",
            "generatorURL": external_url,
            "fingerprint": self.fingerprint,
        }


@functools.lru_cache(maxsize=65536)
def iso(ts):
    """Epoch seconds -> RFC 3339 with milliseconds, as Alertmanager writes it.

    Cached: a storm lists the same alerts (the same start times) in every
    group flush, and formatting a datetime is the costliest part of that.
    """
    if ts is None:
        return "0001-01-01T00:00:00Z"
    moment = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text):
    """RFC 3339 (as Alertmanager writes it) -> epoch seconds, or None for the zero time."""
    if not isinstance(text, str) or not text or text.startswith("0001-01-01"):
        return None
    value = text.strip().replace("Z", "+00:00")
    # Python 3.10 accepts at most 6 fractional digits; Go writes up to 9.
    if "." in value:
        head, tail = value.split(".", 1)
        digits = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(digits):]
        value = f"{head}.{digits[:6]}{zone}"
    moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


class _Missing(dict):
    def __missing__(self, key):
        return "{" + key + "}"


_FORMATTER = string.Formatter()


def render(template, values):
    """Fill the ``{label}`` fields of a template; unknown ones are left as written."""
    try:
        parts = []
        for literal, field, spec, conv in _FORMATTER.parse(template):
            parts.append(literal)
            if field is None:
                continue
            if not field.isidentifier():
                # Only plain names: no attribute or index access into values.
                parts.append("{" + field + "}")
                continue
            value = values.get(field)
            if value is None:
                parts.append("{" + field + "}")
                continue
            try:
                parts.append(format(value, spec or ""))
            except (ValueError, TypeError):
                parts.append(str(value))
        return "".join(parts)
    except ValueError:
        return template
