"""The CMDB change counter: its one query, its one bump, and the stamp that publishes it.

``saltops_meta.cmdb_version`` counts committed CMDB changes (host writes and
blue/green flips).  This module is the only code that reads or moves it:

* :func:`current`, :func:`bump` and :func:`lock` run in the caller's transaction.  The bump's
  ``UPDATE`` takes the row lock (MySQL) or the write lock (SQLite), so
  concurrent writers are serialised and versions strictly increase.
* :data:`SQL` is the same query for callers that hold a raw DB-API cursor (the
  pillar's per-render check, which skips SQLAlchemy's pool bookkeeping).
* :class:`VersionStamp` is an 8-byte file in the master's cache directory.
  A writer on this master publishes each version it committed there, and every
  master worker reads it through ``mmap`` in well under a microsecond: a render
  asks the database only when the stamp moved (a write through this master,
  read-your-writes) or when ``version_check_interval`` has passed (writes made
  through another master or by a process that does not publish).
"""

import logging
import mmap
import os
import struct

import sqlalchemy as sa

from saltops.store.schema import meta

log = logging.getLogger(__name__)

KEY = "cmdb_version"
SQL = "SELECT value FROM saltops_meta WHERE name = 'cmdb_version'"

_SELECT = sa.select(meta.c.value).where(meta.c.name == KEY)
_BUMP = meta.update().where(meta.c.name == KEY).values(value=meta.c.value + 1)
# Where a transaction notes the version it wrote, for the stamp (see publish_on_commit).
_WRITTEN = "saltops_cmdb_version_written"


def current(conn):
    """The committed CMDB version as seen by ``conn`` (0 before any change)."""
    value = conn.execute(_SELECT).scalar()
    return int(value or 0)


def bump(conn):
    """Count one CMDB change in the caller's transaction; returns the new version.

    The new version is noted on the connection, and :meth:`Store.begin
    <saltops.store.engine.Store.begin>` hands it to the stamp once the
    transaction committed (never before: a render must not look for a version
    the database does not have yet).
    """
    conn.execute(_BUMP)
    version = current(conn)
    conn.info[_WRITTEN] = version
    return version


def lock(conn):
    """Take the CMDB write lock for the rest of the caller's transaction.

    Every CMDB write moves this row, so locking it before reading what a write
    is about to change serialises the writers: a read-merge-write (``cmdb.update``)
    then merges into the record as the previous writer left it.  MySQL/MariaDB:
    ``SELECT ... FOR UPDATE`` on the row; SQLite: an ``UPDATE`` that changes
    nothing, which takes the database's write lock (readers go on, WAL).
    Pillar renders never take it.
    """
    if conn.dialect.name == "sqlite":
        conn.execute(meta.update().where(meta.c.name == KEY).values(value=meta.c.value))
    else:
        conn.execute(_SELECT.with_for_update())


def written(notes):
    """The version a committed transaction wrote (from the notes its store hands over), or ``None``."""
    return notes.get(_WRITTEN)


def stamp_path(snapshot_file):
    """The stamp file of a master: beside its CMDB snapshot file, in the master's cache dir."""
    return os.path.join(os.path.dirname(os.path.abspath(snapshot_file)), "cmdb-version.stamp")


_FORMAT = struct.Struct("<Q")


class VersionStamp:
    """The last CMDB version a writer on this master committed, shared through a file.

    Readers only compare what they read with what they read last time, so a
    torn or out-of-order write can at worst cause one extra database check.
    """

    def __init__(self, path):
        self.path = path
        self._map = None
        self._inode = None

    def publish(self, version):
        """Write ``version`` (after its transaction committed).  Never raises: a
        stamp that cannot be written only delays other workers until their next
        timed check."""
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, _FORMAT.pack(int(version)), 0)
            finally:
                os.close(fd)
        except OSError as err:
            log.warning("could not publish CMDB version %s to %s: %s", version, self.path, err)

    def read(self):
        """The stamp's bytes (``b""`` while no writer published one)."""
        mapped = self._map
        if mapped is None:
            mapped = self._open()
            if mapped is None:
                return b""
        return mapped[:8]

    def version(self):
        """The published version as an integer (``None`` when there is none)."""
        return self.unpack(self.read())

    @staticmethod
    def unpack(raw):
        """The version in bytes :meth:`read` returned (``None`` for none)."""
        return _FORMAT.unpack(raw)[0] if raw is not None and len(raw) == 8 else None

    def revalidate(self):
        """Re-open the file if it was replaced or removed (called on timed checks only)."""
        try:
            inode = os.stat(self.path).st_ino
        except OSError:
            inode = None
        if inode != self._inode:
            self.close()

    def _open(self):
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size < 8:
                return None
            self._map = mmap.mmap(fd, 8, prot=mmap.PROT_READ)
            self._inode = os.fstat(fd).st_ino
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
        return self._map

    def close(self):
        if self._map is not None:
            self._map.close()
        self._map = None
        self._inode = None


_PUBLISHERS = {}


def publish_on_commit(store, snapshot_file):
    """Make every version ``store``'s transactions write reach this master's stamp.

    Called where a process opens the store for writing with the master's
    configuration (runners); idempotent per store and stamp.
    """
    path = stamp_path(snapshot_file)
    key = (id(store), path)
    if key in _PUBLISHERS:
        return
    stamp = VersionStamp(path)

    def after_commit(notes):
        version = written(notes)
        if version is not None:
            stamp.publish(version)

    store.add_commit_listener(after_commit)
    _PUBLISHERS[key] = stamp
