"""Labels from the CMDB: ``hostname -> {role, lines, idc, env, owner, status, platform}``.

A labels provider is any callable taking a hostname and returning a dict of
string labels (empty for a host the CMDB does not know).  :class:`CmdbLabels`
is the real one, over the same in-memory CMDB snapshot the pillar renders from.
"""

import ipaddress
import logging
import threading

from saltops.errors import StoreUnavailable

log = logging.getLogger(__name__)

# The labels the CMDB adds to every alarm of a known host.
CMDB_LABELS = ("role", "lines", "idc", "env", "owner", "status", "platform")


def no_labels(_hostname):
    """The provider used when no CMDB is configured."""
    return {}


def record_labels(record):
    """Alarm labels for one CMDB record (as in docs/pillar.md)."""
    roles = record.get("roles") or []
    lines = record.get("lines") or {}
    return {
        "role": ",".join(sorted(str(r) for r in roles)),
        "lines": ",".join(sorted(str(k) for k in lines)),
        "idc": str(record.get("idc") or ""),
        "env": str(record.get("env") or ""),
        "owner": str(record.get("owner") or ""),
        "status": str(record.get("status") or ""),
        "platform": str(record.get("platform") or ""),
    }


def record_addresses(record):
    """Every address of a CMDB record: its main ``ip`` and the address of each of its lines."""
    found = [record.get("ip")]
    found.extend((record.get("lines") or {}).values())
    return {canonical(a) for a in found if isinstance(a, str) and a.strip()}


def canonical(address):
    """One spelling per address (``2001:DB8:0::5`` and ``2001:db8::5`` are one); names lowercased."""
    text = address.strip().lower()
    if ":" not in text:
        return text  # IPv4 or a name: one spelling already (and the common case, kept cheap)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def address_index(snapshot):
    """``address -> hostname`` over a snapshot; an address two hosts claim maps to neither."""
    index, shared = {}, set()
    for name in snapshot.packed:
        for address in record_addresses(snapshot.record(name) or {}):
            if index.setdefault(address, name) != name:
                shared.add(address)
    for address in shared:
        del index[address]
    return index


class CmdbLabels:
    """A labels provider over a CMDB snapshot cache (:class:`saltops.pillar.cache.SnapshotCache`).

    The cache is the pillar's: it asks the database only when the CMDB version
    moved and serves its last snapshot, marked stale, while the database is
    down, so an alarm never waits for the CMDB.  Labels are worked out once per
    host and snapshot version.
    """

    def __init__(self, cache):
        self.cache = cache
        self._version = None
        self._labels = {}
        self._addresses = None  # address -> hostname, built on the first lookup of a snapshot version
        self._lock = threading.Lock()

    def _snapshot(self):
        try:
            return self.cache.current().snapshot
        except StoreUnavailable as err:  # no snapshot at all yet: no labels, the alarm goes on
            log.warning("CMDB labels unavailable: %s", err)
            return None

    @property
    def version(self):
        """The CMDB version of the labels served last."""
        return self._version

    def __call__(self, hostname):
        snap = self._snapshot()
        if snap is None:
            return {}
        with self._lock:
            if snap.version != self._version:
                self._version, self._labels = snap.version, {}
                self._addresses = None
            found = self._labels.get(hostname)
            if found is None:
                record = snap.record(hostname)
                found = record_labels(record) if record is not None else {}
                self._labels[hostname] = found
            return found

    def resolve(self, name):
        """The CMDB hostname ``name`` stands for: itself, or the host one of whose lines has that address.

        ``None`` when the CMDB knows neither.  The address index is built once per
        snapshot version, on the first lookup that needs it.
        """
        snap = self._snapshot()
        if snap is None or not name:
            return None
        for candidate in (name, name.lower()):
            if candidate in snap:
                return candidate
        with self._lock:
            if snap.version != self._version:
                self._version, self._labels = snap.version, {}
                self._addresses = None
            if self._addresses is None:
                self._addresses = address_index(snap)
            return self._addresses.get(canonical(name))

    def known(self, hostname):
        snap = self._snapshot()
        return snap is not None and hostname in snap
