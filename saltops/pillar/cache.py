"""One process's CMDB snapshot for the external pillar, kept current cheaply.

A master renders pillar for thousands of minions at once, in several worker
processes.  Instead of querying the hosts tables per minion, every process
keeps the whole CMDB in memory (:class:`~saltops.pillar.snapshot.Snapshot`)
and decides per render whether it may still be current:

* The master's version stamp (:class:`saltops.cmdb.version.VersionStamp`, an
  8-byte file read through ``mmap``) moves whenever a writer on this master
  (runners, the reactor's runners, salt-api) commits a CMDB change.  A render
  that finds it moved asks the database at once: a render after a write made
  through this master sees that write.
* Otherwise the database is asked at most every
  ``saltops:cmdb:version_check_interval`` seconds (default 1), which bounds how
  long a write made through another master, or by a process that does not
  publish the stamp, stays unseen.  ``0`` asks on every render.

The question is one query on a raw pooled cursor (:data:`saltops.cmdb.version.SQL`);
when the counter moved, :func:`saltops.cmdb.repo.changed_since` brings the
snapshot up to date with the rows changed since (and the hostnames purged since).

Outages: when the database cannot be read, the process serves its in-memory
snapshot (or, after a restart, the snapshot file) marked stale; with neither it
raises :class:`CmdbUnavailable` so the pillar fails and ``state.apply``
refuses.  The shared outage marker (:mod:`saltops.pillar.outage`) fires
``saltops/cmdb/unavailable`` and ``saltops/cmdb/recovered``.

A read replica (``saltops:read_url``): versions and rows are read from the
replica, and every ``saltops:cmdb:replica_check_interval`` seconds the
primary's version counter (one query) is read too.  When the primary is ahead
of the replica (or this master published a version the replica has not got
yet) for ``saltops:cmdb:replica_max_lag`` seconds, or when the primary cannot
be reached at all, the renders are marked stale exactly as in an outage, with
``stale_since`` the moment the replica was first seen behind; the replica's
data is still served.  Without ``read_url`` everything is read from
``db_url`` and none of this happens.

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

import sqlalchemy as sa

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb import version as cmdb_version
from saltops.errors import StoreUnavailable
from saltops.pillar.outage import OutageMarker
from saltops.pillar.snapshot import FORMAT, Snapshot, read_header, redact
from saltops.store.engine import get_store, make_engine

log = logging.getLogger(__name__)

# Defaults of the outage settings under ``saltops:cmdb`` (documented in saltops/config.py).
DEFAULTS = {
    key: config.DEFAULTS["cmdb"][key]
    for key in ("retry_interval", "event_interval", "persist_interval", "replica_max_lag", "replica_check_interval")
}

# Errors that mean "the database cannot be read right now".
DB_ERRORS = (sa.exc.SQLAlchemyError, StoreUnavailable, OSError)


class CmdbUnavailable(StoreUnavailable):
    """The CMDB cannot be read and there is no snapshot to serve."""


View = namedtuple("View", "snapshot stale stale_since")
View.__doc__ = "What a render sees: the snapshot, whether it is stale, and since when (UNIX time)."


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
        stamp_file=None,
        report_outages=True,
        read_url=None,
        read_options=None,
        replica_max_lag=DEFAULTS["replica_max_lag"],
        replica_check_interval=DEFAULTS["replica_check_interval"],
    ):
        self.db_url = db_url
        # Where versions and rows are read: a replica of db_url, or db_url itself.
        self.replica = bool(read_url) and read_url != db_url
        self.read_url = read_url if self.replica else db_url
        self.read_options = dict(read_options or {}) if self.replica else dict(db_options or {})
        self.replica_max_lag = float(replica_max_lag)
        self.replica_check_interval = float(replica_check_interval)
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
        # Only the processes that serve pillar announce outages (the shared
        # marker and its events); a reader such as the alarm engine just serves stale data.
        self.marker = OutageMarker(snapshot_file) if snapshot_file and report_outages else None
        # Without a stamp file every check waits for check_interval (tests, tools).
        self.stamp = cmdb_version.VersionStamp(stamp_file) if stamp_file else None
        self._snapshot = None
        self._reset_process()
        # Counters, for tests and the benchmark.
        self.stats = {
            "checks": 0,
            "stamp_checks": 0,
            "full_loads": 0,
            "incremental": 0,
            "failures": 0,
            "persisted": 0,
        }

    def _reset_process(self):
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._engine = None
        self._migrated = False
        self._checked_at = None
        # The stamp's bytes as read just before the last database check.
        self._stamp_seen = None
        self._stale = False
        self._stale_since = None
        self._retry_at = 0.0
        self._last_error = None
        self._persisted_version = None
        self._persisted_at = None
        self._announce_at = None
        self._primary_engine = None
        # The replica check: when the primary was last asked, its version then,
        # why it could not be asked, and since when the replica is behind.
        self._primary_checked_at = None
        self._primary_version = None
        self._primary_error = None
        self._behind_since = None
        self._lag_reported = False

    # -- database access ---------------------------------------------------

    def read_store(self):
        """The shared store the data is read from (``read_url``), used to (re)load data.

        Without a replica its schema is migrated once per process; a replica
        is never migrated (it gets the schema from the primary).
        """
        store = get_store(self.read_url, self.read_options, migrate=self.migrate and not self.replica)
        self._migrated = True
        return store

    def _check_engine(self, url, options):
        # A small pool of our own for the version check: autocommit and no
        # reset-on-return or pre-ping, so a check is exactly one round trip.
        options = dict(options)
        options.update(pool_pre_ping=False, isolation_level="AUTOCOMMIT", pool_reset_on_return=None)
        return make_engine(url, options)

    def _get_engine(self):
        if self._engine is None:
            if not self._migrated:
                self.read_store()
            self._engine = self._check_engine(self.read_url, self.read_options)
        return self._engine

    def _version(self, engine=None):
        """The CMDB version counter: one query on a pooled connection (of the read database by default).

        A pooled connection that died (server restart, idle timeout) is
        dropped and the query retried once on a new one, so a restart of the
        database does not make a render stale.
        """
        engine = engine or self._get_engine()
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
                    cursor.execute(cmdb_version.SQL)
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
        version = cmdb_version.current(conn)
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
            stamp = self.stamp.read() if self.stamp is not None else None
            if (
                self._snapshot is not None
                and not self._stale
                and self._checked_at is not None
                and stamp == self._stamp_seen
                and now - self._checked_at < self.check_interval
            ):
                return self._fresh_view(now, stamp)
            if self._stale and now < self._retry_at:
                return self._stale_view()
            self.stats["checks"] += 1
            if stamp != self._stamp_seen and self._checked_at is not None:
                self.stats["stamp_checks"] += 1
            elif self.stamp is not None:
                # A timed check: also notice a stamp file that was replaced.
                self.stamp.revalidate()
            try:
                version = self._version()
                snap = self._snapshot
                if snap is None or snap.source != "database" or version != snap.version:
                    # Versions and rows are read again in one transaction.
                    with self.read_store().connect() as conn:
                        self._refresh(conn)
            except DB_ERRORS as err:
                return self._failed(now, err)
            # Read before the query: a write committed meanwhile moves the stamp again.
            self._stamp_seen = stamp
            self._succeeded(now)
            return self._fresh_view(now, stamp)

    def probe(self):
        """Check the database only if an outage is open (the watch engine calls this).

        Returns ``"ok"``, ``"recovered"`` or ``"unavailable"``.
        """
        with self._lock:
            if os.getpid() != self._pid:
                self._after_fork()
            if self.marker is None or not self.marker.exists():
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
        for engine in (self._engine, self._primary_engine):
            if engine is not None:
                engine.dispose(close=False)
        self._reset_process()

    def _fresh_view(self, now, stamp):
        """The view of a snapshot just read (or checked) without error: stale only when a replica lags."""
        since = self._replica_behind(now, stamp) if self.replica else None
        if since is None:
            return View(self._snapshot, False, None)
        return View(self._snapshot, True, since)

    def _replica_behind(self, now, stamp):
        """Since when the replica counts as behind (UNIX time), or ``None`` while it keeps up.

        The primary's version is asked at most every ``replica_check_interval``
        seconds; a version this master's writers published (the stamp) counts
        as the primary's too.  Behind for less than ``replica_max_lag`` seconds
        is normal replication delay; a primary that cannot be reached makes
        the data stale at once (no write can reach the replica any more).
        """
        if self._primary_checked_at is None or now - self._primary_checked_at >= self.replica_check_interval:
            self._primary_checked_at = now
            try:
                if self._primary_engine is None:
                    self._primary_engine = self._check_engine(self.db_url, self.db_options)
                self._primary_version = self._version(self._primary_engine)
                if self._primary_error is not None:
                    log.warning("CMDB primary database reachable again (version %s)", self._primary_version)
                self._primary_error = None
            except DB_ERRORS as err:
                if self._primary_error is None:
                    log.error(
                        "CMDB primary database unreachable, pillar served from the replica and marked stale: %s",
                        _short(err),
                    )
                self._primary_error = err
        known = [v for v in (self._primary_version, _stamp_version(stamp)) if v is not None]
        replica_version = self._snapshot.version
        if self._primary_error is None and (not known or max(known) <= replica_version):
            if self._lag_reported:
                log.warning("CMDB replica caught up with the primary (version %s)", replica_version)
            self._behind_since = None
            self._lag_reported = False
            return None
        if self._behind_since is None:
            self._behind_since = now
        if self._primary_error is None and now - self._behind_since < self.replica_max_lag:
            return None
        if not self._lag_reported and self._primary_error is None:
            log.error(
                "CMDB replica at version %s is behind the primary (version %s) for %.0f s: pillar marked stale",
                replica_version, max(known), now - self._behind_since,
            )
        self._lag_reported = True
        return self._behind_since

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
        if self._snapshot is None and self.snapshot_file:
            self._snapshot = Snapshot.load(self.snapshot_file, self.source_url, roles=self.backend_roles)
            if self._snapshot is not None:
                log.warning(
                    "serving CMDB snapshot version %s from %s (stale)",
                    self._snapshot.version,
                    self.snapshot_file,
                )
        if self.marker is None:
            self._stale_since = self._stale_since or now
            return self._stale_view()
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
        if self.marker is not None and self.marker.exists() and (
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
        if not self.snapshot_file or self.marker is None or snap.version == self._persisted_version:
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
            for engine in (self._engine, self._primary_engine):
                if engine is not None:
                    engine.dispose()
            if self.stamp is not None:
                self.stamp.close()
            self._snapshot = None
            self._reset_process()


def _stamp_version(stamp):
    return cmdb_version.VersionStamp.unpack(stamp)


def _short(err):
    if err is None:
        return "no error recorded"
    text = str(getattr(err, "orig", None) or err)
    return text.splitlines()[0][:300] if text else type(err).__name__


# -- one cache per process and configuration ----------------------------------

_CACHES = {}
# id(conf) -> (conf, cache, report_outages): the conf is kept, so its id is not reused.
_BY_CONF = {}
_CACHES_LOCK = threading.Lock()


def cache_for(conf, fire=None, clock=time.time, report_outages=True):
    """The process's :class:`SnapshotCache` for a loaded ``saltops:`` config."""
    # A render hands in the same (read-only) conf object every time
    # (config.load_cached): skip working out the key again.
    hit = _BY_CONF.get(id(conf))
    if hit is not None and hit[0] is conf and hit[2] == report_outages:
        if fire is not None:
            hit[1].fire = fire
        return hit[1]
    config.db_url(conf)  # ConfigError without one: never a new empty database
    cmdb = conf["cmdb"]
    settings = {k: cmdb.get(k, v) for k, v in DEFAULTS.items()}
    served = tuple(sorted(set(cmdb["lb_serves"].values())))
    key = (
        served,
        conf["db_url"],
        conf.get("read_url"),
        cmdb["snapshot_file"],
        repr(sorted(conf.get("db_options", {}).items())),
        repr(sorted((conf.get("read_options") or {}).items())),
        cmdb.get("version_check_interval") or 0,
        tuple(sorted(settings.items())),
        report_outages,
    )
    with _CACHES_LOCK:
        cache = _CACHES.get(key)
        if cache is None:
            cache = SnapshotCache(
                conf["db_url"],
                cmdb["snapshot_file"],
                db_options=conf.get("db_options"),
                check_interval=cmdb.get("version_check_interval") or 0,
                stamp_file=cmdb_version.stamp_path(cmdb["snapshot_file"]),
                fire=fire,
                clock=clock,
                backend_roles=served,
                report_outages=report_outages,
                read_url=conf.get("read_url"),
                read_options=conf.get("read_options"),
                **settings,
            )
            _CACHES[key] = cache
        if len(_BY_CONF) > 64:
            _BY_CONF.clear()
        _BY_CONF[id(conf)] = (conf, cache, report_outages)
    if fire is not None:
        cache.fire = fire
    return cache


def forget_caches():
    """Drop every process cache (tests)."""
    with _CACHES_LOCK:
        _BY_CONF.clear()
        for cache in _CACHES.values():
            cache.forget()
        _CACHES.clear()


def labels_cache(conf, store):
    """A snapshot cache for a reader that is not a pillar worker (the alarm engine's labels).

    With the master's full configuration it is the configured cache (snapshot
    file, stamp), minus the outage announcements, which belong to the pillar
    workers; for a bare store (tools, tests) a memory-only cache of it.
    """
    cmdb = conf.get("cmdb") or {}
    if conf.get("db_url") == store.url and cmdb.get("snapshot_file") and "lb_serves" in cmdb:
        return cache_for(conf, report_outages=False)
    return SnapshotCache(
        store.url,
        None,
        check_interval=config.DEFAULTS["cmdb"]["version_check_interval"],
        migrate=False,
        backend_roles=(),
    )
