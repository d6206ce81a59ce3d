"""Label matchers, durations and fingerprints: the vocabulary of every stage.

Matchers are written as Alertmanager writes them (``name="value"``,
``name!="value"``, ``name=~"regex"``, ``name!~"regex"``) or as a mapping of
exact values (``{severity: critical}``).
"""

import hashlib
import re

from saltops.durations import parse_duration  # re-exported: rules and runners read it here
from saltops.errors import ValidationError

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^\s"=!~]*))\s*$')
LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Matcher:
    """One condition on one label; a missing label matches as the empty string."""

    __slots__ = ("_re", "name", "op", "value")

    def __init__(self, name, op, value):
        if not LABEL_NAME.match(name or ""):
            raise ValueError(f"invalid label name {name!r}")
        if op not in ("=", "!=", "=~", "!~"):
            raise ValueError(f"invalid matcher operator {op!r}")
        self.name = name
        self.op = op
        self.value = str(value)
        self._re = None
        if op in ("=~", "!~"):
            try:
                self._re = re.compile(r"(?:" + self.value + r")\Z")
            except re.error as err:
                raise ValueError(f"invalid regular expression {self.value!r}: {err}") from None

    def matches(self, labels):
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        if self.op == "=~":
            return self._re.match(got) is not None
        return self._re.match(got) is None

    def to_dict(self):
        return {"name": self.name, "op": self.op, "value": self.value}

    def __str__(self):
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'

    def __repr__(self):
        return f"Matcher({self})"


def parse_matcher(text):
    """``'severity=~"critical|warning"'`` -> :class:`Matcher`."""
    if not isinstance(text, str):
        raise ValueError(f"a matcher is a string like 'name=\"value\"', got {text!r}")
    found = _MATCHER.match(text)
    if not found:
        raise ValueError(f"cannot parse matcher {text!r} (expected name=\"value\", !=, =~ or !~)")
    name, op, quoted, bare = found.groups()
    value = quoted if quoted is not None else bare
    if quoted is not None:
        value = re.sub(r"\\(.)", r"\1", value)
    return Matcher(name, op, value)


def parse_matchers(spec, where="matchers"):
    """A list of matcher strings/dicts or an exact-value mapping -> [Matcher]."""
    if spec is None:
        return []
    out = []
    if isinstance(spec, dict):
        for name, value in spec.items():
            if not isinstance(value, (str, int, float, bool)):
                raise ValueError(f"{where}: the value of {name!r} must be a scalar")
            out.append(Matcher(str(name), "=", value))
        return out
    if not isinstance(spec, list):
        raise ValueError(f"{where} must be a list of matchers or a mapping of label values")
    for item in spec:
        if isinstance(item, dict) and {"name", "value"} <= set(item):
            out.append(Matcher(str(item["name"]), item.get("op", "="), item["value"]))
        else:
            out.append(parse_matcher(item))
    return out


def split_matchers(text):
    """``'a="x,y",b=~"z"'`` -> ``['a="x,y"', 'b=~"z"']``: split on commas outside quotes."""
    out, cur, quoted, escaped = [], "", False, False
    for ch in text:
        if escaped:
            cur += ch
            escaped = False
        elif ch == "\\":
            cur += ch
            escaped = True
        elif ch == '"':
            cur += ch
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def matches_all(matchers, labels):
    return all(m.matches(labels) for m in matchers)


def fingerprint(labels, namespace=None):
    """A stable id for a label set (order-independent).

    ``namespace`` keeps alerts of another source apart from the pipeline's
    own: with ``namespace="prometheus"`` no label set, whatever it holds, can
    hash to the fingerprint of an alarm the pipeline raised (whose label names
    are checked words, so none starts with the namespace's separator).
    """
    raw = "\x1f".join(f"{k}\x1e{labels[k]}" for k in sorted(labels))
    if namespace is not None:
        raw = f"\x1d{namespace}\x1d{raw}"
    return hashlib.sha1(raw.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def check_matchers(spec, where, problems):
    """Parse ``spec`` and append a readable problem instead of raising."""
    try:
        return parse_matchers(spec, where)
    except ValueError as err:
        problems.append(f"{where}: {err}")
        return []


__all__ = [
    "Matcher",
    "ValidationError",
    "check_matchers",
    "fingerprint",
    "matches_all",
    "parse_duration",
    "parse_matcher",
    "parse_matchers",
    "split_matchers",
]
