"""Ingest: turn a master-bus event into a :class:`Sample` of one host, or reject it.

Trust (see docs/alarms.md, "Trust"): the host of a sample is the minion id in
the event *data* (``id``), never the tag.  How much that id is worth depends
on how the event reached the bus, as measured in Salt 3008.4:

* a single event a minion sends (``event.send``, job returns, minion start)
  is fired as the whole request load, whose ``id`` the request server checked
  against the minion's signature: authenticated;
* beacon events arrive in a batch, and the master fires each one's data as
  the minion wrote it: ``id`` is a *claim* (an honest minion writes its own);
* anything with access to the master bus can fire any tag with any data.

So this module checks what can be checked: an event whose tag names another
minion than its ``id`` is rejected (``id_mismatch``: catches a minion using
``event.send`` on a victim's tag, since its authenticated id then differs),
as is an id that is not a valid minion id (``bad_id``), one whose key the
master has not accepted (``unknown_minion``), data that is not a mapping,
too large or too deeply nested.  A compromised minion that writes a victim's
id consistently into a batched beacon event's tag and data is *not* caught:
Salt does not say who sent a batched event.  Every rejection has a reason,
counted by the caller; nothing here raises anything but :class:`Rejected`.
"""

import os
import re
import time

MINION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,252}$")
MAX_TAG = 512


class Rejected(Exception):
    """The event is malformed or forged; ``reason`` is a short metric label."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Sample:
    """A validated observation from one host."""

    __slots__ = ("data", "host", "kind", "name", "rest", "tag", "ts")

    def __init__(self, host, kind, name, rest, tag, data, ts):
        self.host = host
        self.kind = kind  # "beacon", "tag" or "seen" (a sign of life only)
        self.name = name  # the beacon name for kind == "beacon"
        self.rest = rest  # what follows the beacon name in the tag
        self.tag = tag
        self.data = data
        self.ts = ts


def payload_size(data, max_bytes, max_nodes, max_depth):
    """Approximate encoded size of ``data``; raise :class:`Rejected` past the limits.

    Walks at most ``max_nodes`` nodes, so a huge payload costs little to refuse.
    """
    size = 0
    nodes = 0
    stack = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise Rejected("too_large", f"more than {max_nodes} values")
        if depth > max_depth:
            raise Rejected("too_large", f"nested deeper than {max_depth}")
        if isinstance(item, dict):
            for key, value in item.items():
                size += len(key) + 2 if isinstance(key, (str, bytes)) else 9
                stack.append((value, depth + 1))
        elif isinstance(item, (list, tuple)):
            size += 2
            stack.extend((value, depth + 1) for value in item)
        elif isinstance(item, (str, bytes)):
            size += len(item) + 2
        else:
            size += 9
        if size > max_bytes:
            raise Rejected("too_large", f"payload over {max_bytes} bytes")
    return size


class AcceptedKeys:
    """Is a minion id one whose key the master accepted?  (``pki_dir/minions``)."""

    def __init__(self, pki_dir, ttl=5.0, clock=time.monotonic):
        self.path = os.path.join(pki_dir, "minions")
        self.ttl = ttl
        self.clock = clock
        self._names = frozenset()
        self._loaded = None

    def _load(self):
        try:
            self._names = frozenset(os.listdir(self.path))
        except OSError:
            self._names = frozenset()
        self._loaded = self.clock()

    def __call__(self, minion_id):
        now = self.clock()
        if self._loaded is None or now - self._loaded > self.ttl:
            self._load()
        elif minion_id not in self._names and now - self._loaded > 1.0:
            # A key accepted a moment ago: look again, at most once a second.
            self._load()
        return minion_id in self._names


class Ingest:
    """Validate master-bus events; ``accepted`` (minion id -> bool) is optional."""

    def __init__(self, tag_rules=(), max_bytes=65536, max_nodes=2000, max_depth=8, accepted=None,
                 clock=time.time):
        self.tag_rules = list(tag_rules)
        self.max_bytes = max_bytes
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.accepted = accepted
        self.clock = clock

    def _minion(self, data, tag_id):
        if not isinstance(data, dict):
            raise Rejected("not_a_mapping", type(data).__name__)
        payload_size(data, self.max_bytes, self.max_nodes, self.max_depth)
        minion = data.get("id")
        if not isinstance(minion, str) or not MINION_ID.match(minion):
            raise Rejected("bad_id", repr(minion)[:80])
        if tag_id is not None and tag_id != minion:
            raise Rejected("id_mismatch", f"tag names {tag_id[:80]!r}, data id is {minion!r}")
        if self.accepted is not None and not self.accepted(minion):
            raise Rejected("unknown_minion", minion)
        return minion

    def check(self, tag, data):
        """A :class:`Sample`, ``None`` for events the pipeline does not watch, or :class:`Rejected`."""
        if not isinstance(tag, str):
            raise Rejected("bad_tag", type(tag).__name__)
        if tag.startswith("salt/beacon/"):
            if len(tag) > MAX_TAG:
                raise Rejected("bad_tag", "tag too long")
            parts = tag.split("/", 4)
            if len(parts) < 4 or not parts[2] or not parts[3]:
                raise Rejected("bad_tag", tag[:80])
            host = self._minion(data, parts[2])
            rest = parts[4] if len(parts) > 4 else ""
            return Sample(host, "beacon", parts[3], rest.strip("/"), tag, data, self.clock())
        if tag.startswith("salt/job/") and "/ret/" in tag:
            host = self._minion(data, tag.rsplit("/", 1)[-1])
            return Sample(host, "seen", None, "", tag, None, self.clock())
        if tag.startswith("salt/minion/") and tag.endswith("/start"):
            host = self._minion(data, tag.split("/")[2])
            return Sample(host, "seen", None, "", tag, None, self.clock())
        if tag.startswith("salt/") or tag.startswith("saltops/"):
            return None
        for rule in self.tag_rules:
            if rule.tag_matches(tag):
                if len(tag) > MAX_TAG:
                    raise Rejected("bad_tag", "tag too long")
                host = self._minion(data, None)
                return Sample(host, "tag", None, "", tag, data, self.clock())
        return None
