"""A per-process snapshot of the whole CMDB, for the external pillar.

A master renders pillar for thousands of minions at once, in several worker
processes.  Instead of querying the hosts tables per minion, every process
keeps the whole CMDB in memory and asks the database one cheap question per
render (none within ``saltops:cmdb:version_check_interval``)::

    SELECT value FROM saltops_meta WHERE name = 'cmdb_version'

When the counter moved, :func:`saltops.cmdb.repo.changed_since` brings the
snapshot up to date with the rows changed since (and the hostnames purged
since).  Every process checks the shared counter, so all workers converge on
the same data without talking to each other.

Memory: each record is kept as one msgpack blob (a few hundred bytes) and
unpacked per render, which also hands every render its own copy.  An index
``(role, env) -> online hostnames`` serves the balancers' backend lists; the
list for one ``(role, env)`` is built once per change that touches it and is
shared by every balancer render in the process (read-only, see
:meth:`Snapshot.backends`).

Outages: the last snapshot read from the database is written to
``saltops:cmdb:snapshot_file`` (msgpack, tmp file + rename, only when the
version changed, at most every ``persist_interval`` seconds).  When the database
cannot be read, the process serves its in-memory snapshot (or, after a
restart, the file) marked stale; with neither it raises :class:`CmdbUnavailable`
so the pillar fails and ``state.apply`` refuses.  The shared outage marker
(:mod:`saltops.cmdb.outage`) fires ``saltops/cmdb/unavailable`` and
``saltops/cmdb/recovered``.

Consistency: on MySQL/MariaDB (InnoDB, REPEATABLE READ) the version and the
rows are read in one transaction, so the snapshot is exactly the CMDB at that
version.  SQLite reads each statement separately: the rows may then be newer
than the version read first; the next check sees a higher counter and reads
those rows again, so the snapshot is never older than its label.
"""

import logging
import os
import threading
import time
from collections import namedtuple

import msgpack
import sqlalchemy as sa

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import FIELDS
from saltops.cmdb.outage import OutageMarker
from saltops.errors import StoreUnavailable
from saltops.store.engine import get_store, make_engine

log = logging.getLogger(__name__)

FORMAT = 1
# Fields of a record kept in the snapshot: the contract's fields (the row's own
# ``version`` is dropped: the pillar shows the snapshot's version).
RECORD_FIELDS = FIELDS
BACKEND_FIELDS = ("hostname", "ip", "lines", "idc", "apps")

# Defaults of the outage settings under ``saltops:cmdb`` (documented in saltops/config.py).
DEFAULTS = {key: config.DEFAULTS["cmdb"][key] for key in ("retry_interval", "event_interval", "persist_interval")}

VERSION_SQL = "SELECT value FROM saltops_meta WHERE name = 'cmdb_version'"

# Errors that mean "the database cannot be read right now".
DB_ERRORS = (sa.exc.SQLAlchemyError, StoreUnavailable, OSError)


class CmdbUnavailable(StoreUnavailable):
    """The CMDB cannot be read and there is no snapshot to serve."""


View = namedtuple("View", "snapshot stale stale_since")
View.__doc__ = "What a render sees: the snapshot, whether it is stale, and since when (UNIX time)."


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
                cached.append({f: rec.get(f) for f in BACKEND_FIELDS})
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


class SnapshotCache:
    """One process's CMDB snapshot, refreshed from the database when it changed."""

    def __init__(
        self,
        db_url,
        snapshot_file,
        db_options=None,
        check_interval=0,
        retry_interval=DEFAULTS["retry_interval"],
        event_interval=DEFAULTS["event_interval"],
        persist_interval=DEFAULTS["persist_interval"],
        fire=None,
        clock=time.time,
        migrate=True,
        backend_roles=None,
    ):
        self.db_url = db_url
        self.backend_roles = frozenset(backend_roles) if backend_roles is not None else None
        self.source_url = redact(db_url)
        self.snapshot_file = snapshot_file
        self.db_options = dict(db_options or {})
        self.check_interval = float(check_interval or 0)
        self.retry_interval = float(retry_interval)
        self.event_interval = float(event_interval)
        self.persist_interval = float(persist_interval)
        self.fire = fire
        self.clock = clock
        self.migrate = migrate
        self.marker = OutageMarker(snapshot_file)
        self._snapshot = None
        self._reset_process()
        # Counters, for tests and the benchmark.
        self.stats = {"checks": 0, "full_loads": 0, "incremental": 0, "failures": 0, "persisted": 0}

    def _reset_process(self):
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._engine = None
        self._migrated = False
        self._checked_at = None
        self._stale = False
        self._stale_since = None
        self._retry_at = 0.0
        self._last_error = None
        self._persisted_version = None
        self._persisted_at = None
        self._announce_at = None

    # -- database access ---------------------------------------------------

    def _store(self):
        """The shared store (schema migrated once per process): used to (re)load data."""
        store = get_store(self.db_url, self.db_options, migrate=self.migrate)
        self._migrated = True
        return store

    def _get_engine(self):
        if self._engine is None:
            if not self._migrated:
                self._store()
            # A small pool of our own for the version check: autocommit and no
            # reset-on-return or pre-ping, so a check is exactly one round trip.
            options = dict(self.db_options)
            options.update(pool_pre_ping=False, isolation_level="AUTOCOMMIT", pool_reset_on_return=None)
            self._engine = make_engine(self.db_url, options)
        return self._engine

    def _version(self):
        """The CMDB version counter: one query on a pooled connection.

        A pooled connection that died (server restart, idle timeout) is
        dropped and the query retried once on a new one, so a restart of the
        database does not make a render stale.
        """
        engine = self._get_engine()
        dbapi_error = engine.dialect.loaded_dbapi.Error
        for attempt in (1, 2):
            try:
                raw = engine.raw_connection()
            except dbapi_error as err:
                # Connecting failed: the server is not there (no retry needed).
                raise StoreUnavailable(f"database unavailable: {err}") from err
            try:
                cursor = raw.cursor()
                try:
                    cursor.execute(VERSION_SQL)
                    row = cursor.fetchone()
                finally:
                    cursor.close()
            except dbapi_error as err:
                raw.invalidate()
                if attempt == 1:
                    continue
                raise StoreUnavailable(f"database unavailable: {err}") from err
            raw.close()
            if row is None:
                raise StoreUnavailable("the CMDB version counter (saltops_meta.cmdb_version) is missing")
            return int(row[0])
        raise AssertionError("unreachable")

    def _refresh(self, conn):
        version = repo.current_version(conn)
        snap = self._snapshot
        if snap is None or snap.source != "database" or version < snap.version:
            records = repo.list_hosts(conn)
            self._snapshot = Snapshot.from_records(version, records, roles=self.backend_roles)
            self.stats["full_loads"] += 1
        elif version != snap.version:
            changed, purged = repo.changed_since(conn, snap.version)
            snap.apply(version, changed, purged)
            self.stats["incremental"] += 1

    # -- the public entry points -------------------------------------------

    def current(self):
        """The snapshot for one render; raises :class:`CmdbUnavailable` when there is none."""
        with self._lock:
            if os.getpid() != self._pid:
                self._after_fork()
            now = self.clock()
            if (
                self._snapshot is not None
                and not self._stale
                and self._checked_at is not None
                and now - self._checked_at < self.check_interval
            ):
                return View(self._snapshot, False, None)
            if self._stale and now < self._retry_at:
                return self._stale_view()
            self.stats["checks"] += 1
            try:
                version = self._version()
                snap = self._snapshot
                if snap is None or snap.source != "database" or version != snap.version:
                    # Versions and rows are read again in one transaction.
                    with self._store().connect() as conn:
                        self._refresh(conn)
            except DB_ERRORS as err:
                return self._failed(now, err)
            self._succeeded(now)
            return View(self._snapshot, False, None)

    def probe(self):
        """Check the database only if an outage is open (the watch engine calls this).

        Returns ``"ok"``, ``"recovered"`` or ``"unavailable"``.
        """
        with self._lock:
            if os.getpid() != self._pid:
                self._after_fork()
            if not self.marker.exists():
                return "ok"
            now = self.clock()
            try:
                version = self._version()
            except DB_ERRORS as err:
                self.stats["failures"] += 1
                self.marker.failed(now, err, self.event_interval, self.fire)
                return "unavailable"
            ended = self.marker.recovered(now, self.fire, {"version": version})
            return "recovered" if ended is not None else "ok"

    # -- internals -----------------------------------------------------------

    def _after_fork(self):
        # Pooled sockets belong to the parent; the data is still good.
        if self._engine is not None:
            self._engine.dispose(close=False)
        self._reset_process()

    def _stale_view(self):
        if self._snapshot is None:
            raise self._unavailable_error()
        return View(self._snapshot, True, self._stale_since)

    def _unavailable_error(self):
        return CmdbUnavailable(
            f"the CMDB database ({self.source_url}) cannot be read and this master has no "
            f"snapshot of it (looked for {self.snapshot_file}): {_short(self._last_error)}. "
            "Pillar compilation fails so that no state runs without CMDB data; it recovers by "
            "itself when the database answers again"
        )

    def _failed(self, now, err):
        self.stats["failures"] += 1
        first = not self._stale
        self._stale = True
        self._retry_at = now + self.retry_interval
        self._last_error = err
        if first:
            log.error("CMDB database unavailable, serving the last known good snapshot: %s", _short(err))
        if self._snapshot is None:
            self._snapshot = Snapshot.load(self.snapshot_file, self.source_url, roles=self.backend_roles)
            if self._snapshot is not None:
                log.warning(
                    "serving CMDB snapshot version %s from %s (stale)",
                    self._snapshot.version,
                    self.snapshot_file,
                )
        extra = {"version": self._snapshot.version if self._snapshot is not None else None}
        try:
            self._stale_since = self.marker.failed(now, err, self.event_interval, self.fire, extra)
        except OSError as marker_err:
            log.warning("could not update the CMDB outage marker: %s", marker_err)
            self._stale_since = self._stale_since or now
        return self._stale_view()

    def _succeeded(self, now):
        self._checked_at = now
        was_stale = self._stale
        if was_stale:
            log.warning("CMDB database available again (version %s)", self._snapshot.version)
        self._stale = False
        self._stale_since = None
        self._last_error = None
        # Announce the end of an outage (once, whichever worker gets there first).
        # A failed announcement is retried at most every retry_interval, so a
        # missing event bus does not slow every render down.
        if self.marker.exists() and (
            self._announce_at is None or now - self._announce_at >= self.retry_interval or was_stale
        ):
            self._announce_at = now
            try:
                self.marker.recovered(now, self.fire, {"version": self._snapshot.version})
            except OSError as err:
                log.warning("could not update the CMDB outage marker: %s", err)
        self._maybe_persist(now)

    def _maybe_persist(self, now):
        snap = self._snapshot
        if snap.version == self._persisted_version:
            return
        if self._persisted_at is not None and now - self._persisted_at < self.persist_interval:
            return
        self._persisted_at = now
        try:
            header = read_header(self.snapshot_file)
            if (
                header
                and header.get("source") == self.source_url
                and header.get("format") == FORMAT
                and header.get("version") == snap.version
            ):
                # Another worker already wrote this version.
                self._persisted_version = snap.version
                return
            snap.save(self.snapshot_file, self.source_url, now)
            self._persisted_version = snap.version
            self.stats["persisted"] += 1
        except OSError as err:
            log.warning("could not write the CMDB snapshot file %s: %s", self.snapshot_file, err)

    def forget(self):
        """Drop the in-memory snapshot and the pool (tests; a config change)."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._snapshot = None
            self._reset_process()


def _short(err):
    if err is None:
        return "no error recorded"
    text = str(getattr(err, "orig", None) or err)
    return text.splitlines()[0][:300] if text else type(err).__name__


# -- one cache per process and configuration ----------------------------------

_CACHES = {}
_CACHES_LOCK = threading.Lock()


def cache_for(conf, fire=None, clock=time.time):
    """The process's :class:`SnapshotCache` for a loaded ``saltops:`` config."""
    cmdb = conf["cmdb"]
    settings = {k: cmdb.get(k, v) for k, v in DEFAULTS.items()}
    served = tuple(sorted(set(cmdb["lb_serves"].values())))
    key = (
        served,
        conf["db_url"],
        cmdb["snapshot_file"],
        repr(sorted(conf.get("db_options", {}).items())),
        cmdb.get("version_check_interval") or 0,
        tuple(sorted(settings.items())),
    )
    with _CACHES_LOCK:
        cache = _CACHES.get(key)
        if cache is None:
            cache = SnapshotCache(
                conf["db_url"],
                cmdb["snapshot_file"],
                db_options=conf.get("db_options"),
                check_interval=cmdb.get("version_check_interval") or 0,
                fire=fire,
                clock=clock,
                backend_roles=served,
                **settings,
            )
            _CACHES[key] = cache
    if fire is not None:
        cache.fire = fire
    return cache


def forget_caches():
    """Drop every process cache (tests)."""
    with _CACHES_LOCK:
        for cache in _CACHES.values():
            cache.forget()
        _CACHES.clear()
