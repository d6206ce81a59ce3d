"""The whole CMDB at one version, held in memory, and its file on disk.

A :class:`Snapshot` keeps each record as one msgpack blob (a few hundred bytes)
and unpacks it per render, which also hands every render its own copy.  An
index ``(role, env) -> online hostnames`` serves the balancers' backend lists;
the list for one ``(role, env)`` is built once per change that touches it and
is shared by every balancer render in the process (read-only, see
:meth:`Snapshot.backends`).

The file (``saltops:cmdb:snapshot_file``, msgpack, tmp file + rename, mode
0600) is the last snapshot read from the database: what a worker serves,
marked stale, when it starts while the database is down.
"""

import logging
import os
import threading
import time

import msgpack
import sqlalchemy as sa

from saltops.cmdb.model import FIELDS

log = logging.getLogger(__name__)

FORMAT = 1
# Fields of a record kept in the snapshot: the contract's fields (the row's own
# ``version`` is dropped: the pillar shows the snapshot's version).
RECORD_FIELDS = FIELDS
BACKEND_FIELDS = ("hostname", "ip", "lines", "idc", "apps")
# What a balancer needs of each app a backend runs (the lb formula's haproxy.cfg): the
# rest of the app's settings (hooks, environment, paths) stays on the app's own hosts.
BALANCER_APP_KEYS = ("server_name", "health_url", "slots")


def _for_balancer(record):
    entry = {f: record.get(f) for f in BACKEND_FIELDS}
    entry["apps"] = {
        name: {k: settings[k] for k in BALANCER_APP_KEYS if k in settings}
        for name, settings in (record.get("apps") or {}).items()
        if isinstance(settings, dict)
    }
    return entry

def _pack(record):
    return msgpack.packb({f: record.get(f) for f in RECORD_FIELDS}, use_bin_type=True)


def _unpack(blob):
    return msgpack.unpackb(blob, raw=False, strict_map_key=False)


class Snapshot:
    """The CMDB at one version: packed records by hostname plus the backends index."""

    def __init__(self, version, packed=None, source="database", roles=None):
        self.version = int(version)
        self.source = source
        # Roles whose backends are indexed (the served roles of lb_serves);
        # ``None`` indexes every role.
        self.roles = frozenset(roles) if roles is not None else None
        self.packed = packed if packed is not None else {}
        self.index = {}
        self._backends = {}
        for name, blob in self.packed.items():
            self._index_add(name, _unpack(blob))

    @classmethod
    def from_records(cls, version, records, roles=None):
        return cls(version, {rec["hostname"]: _pack(rec) for rec in records}, roles=roles)

    def __len__(self):
        return len(self.packed)

    def __contains__(self, hostname):
        return hostname in self.packed

    def _keys(self, record):
        if record.get("status") != "online":
            return ()
        return [
            (role, record.get("env"))
            for role in record.get("roles") or ()
            if self.roles is None or role in self.roles
        ]

    def _index_add(self, name, record):
        for key in self._keys(record):
            self.index.setdefault(key, set()).add(name)
            self._backends.pop(key, None)

    def _index_remove(self, name, record):
        for key in self._keys(record):
            members = self.index.get(key)
            if members is not None:
                members.discard(name)
                if not members:
                    del self.index[key]
            self._backends.pop(key, None)

    def apply(self, version, changed, purged):
        """Bring the snapshot to ``version`` with the output of ``repo.changed_since``."""
        changed_names = {rec["hostname"] for rec in changed}
        for name in purged:
            if name in changed_names:
                continue
            blob = self.packed.pop(name, None)
            if blob is not None:
                self._index_remove(name, _unpack(blob))
        for rec in changed:
            name = rec["hostname"]
            blob = self.packed.get(name)
            if blob is not None:
                self._index_remove(name, _unpack(blob))
            self.packed[name] = _pack(rec)
            self._index_add(name, rec)
        self.version = int(version)

    def record(self, hostname):
        """The record of ``hostname`` (a fresh dict the caller may change), or ``None``."""
        blob = self.packed.get(hostname)
        return None if blob is None else _unpack(blob)

    def backends(self, role, env):
        """Online hosts of ``role`` in ``env``, sorted by hostname, as backend entries.

        The entries are built once per change of that ``(role, env)`` and shared
        between renders; the list itself is a new one each call.  Salt only
        merges and serialises pillar data, so sharing is safe; callers must not
        change the entries.
        """
        if self.roles is not None and role not in self.roles:
            raise KeyError(
                f"role {role!r} is not indexed for backends (indexed: {', '.join(sorted(self.roles))})"
            )
        key = (role, env)
        cached = self._backends.get(key)
        if cached is None:
            cached = []
            for name in sorted(self.index.get(key, ())):
                rec = _unpack(self.packed[name])
                cached.append(_for_balancer(rec))
            self._backends[key] = cached
        return list(cached)

    # -- the snapshot file -------------------------------------------------

    def save(self, path, source_url, now=None):
        """Write the snapshot to ``path`` atomically (tmp file + rename, mode 0600)."""
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        header = {
            "format": FORMAT,
            "version": self.version,
            "saved_at": now if now is not None else time.time(),
            "source": source_url,
            "hosts": len(self.packed),
        }
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        packer = msgpack.Packer(use_bin_type=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(packer.pack(header))
                fh.write(packer.pack(self.packed))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return header

    @classmethod
    def load(cls, path, source_url=None, roles=None):
        """Read a snapshot file; ``None`` when missing, foreign or unreadable."""
        try:
            with open(path, "rb") as fh:
                unpacker = msgpack.Unpacker(fh, raw=False, strict_map_key=False, max_buffer_size=0)
                header = next(unpacker)
                if not _header_ok(header, source_url, path):
                    return None
                packed = next(unpacker)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, StopIteration, msgpack.UnpackException) as err:
            log.warning("ignoring unreadable CMDB snapshot file %s: %s", path, err)
            return None
        if not isinstance(packed, dict):
            log.warning("ignoring CMDB snapshot file %s: unexpected content", path)
            return None
        snap = cls(header["version"], packed, source="file", roles=roles)
        snap.saved_at = header.get("saved_at")
        return snap


def read_header(path):
    """The header of a snapshot file (cheap: the records are not read)."""
    try:
        with open(path, "rb") as fh:
            return next(msgpack.Unpacker(fh, raw=False, read_size=4096))
    except (OSError, ValueError, StopIteration, msgpack.UnpackException):
        return None


def _header_ok(header, source_url, path):
    if (
        not isinstance(header, dict)
        or header.get("format") != FORMAT
        or not isinstance(header.get("version"), int)
    ):
        log.warning("ignoring CMDB snapshot file %s: unknown format", path)
        return False
    if source_url is not None and header.get("source") != source_url:
        log.warning(
            "ignoring CMDB snapshot file %s: it was read from %s, not %s",
            path,
            header.get("source"),
            source_url,
        )
        return False
    return True


def redact(url):
    """The database URL without its password, as written in the snapshot file."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


