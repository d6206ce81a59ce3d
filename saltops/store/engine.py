"""Engines and transactions.

One SQLAlchemy engine per database URL and process: a Salt master forks its
workers after loading modules, and a pooled connection must never be shared
across a fork, so the cache is keyed by the process id too.
"""

import logging
import os
import threading
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import event, exc

from saltops.errors import StoreFull, StoreUnavailable

log = logging.getLogger(__name__)

_ENGINES = {}
_LOCK = threading.Lock()


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    # WAL lets pillar renders read while a runner writes; foreign keys are off by
    # default in SQLite and the schema relies on ON DELETE CASCADE.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def mysql_driver(url):
    """The DB-API driver for a MySQL/MariaDB URL.

    An explicit ``mysql+pymysql://`` or ``mysql+mysqldb://`` is honoured.  A bare
    ``mysql://`` takes mysqlclient (the ``mysql`` extra: C, ~2-3x faster on bulk
    writes such as an import) where it is installed, else PyMySQL (pure Python,
    always installed).
    """
    parsed = sa.engine.make_url(url)
    if "+" in parsed.drivername:
        return parsed.get_driver_name()
    try:
        import MySQLdb  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        return "pymysql"
    return "mysqldb"


def make_engine(url, options=None):
    """Create an engine for ``url`` with the settings SaltOps relies on."""
    options = dict(options or {})
    parsed = sa.engine.make_url(url)
    kwargs = {"future": True, "pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    elif parsed.get_backend_name() == "mysql":
        parsed = parsed.set(drivername=f"mysql+{mysql_driver(parsed)}")
        connect_args = {"connect_timeout": 5, "read_timeout": 30, "write_timeout": 30, "charset": "utf8mb4"}
        # PyMySQL 1.2 negotiates TLS by default, ~45 ms of CPU per new connection
        # even on loopback.  Only an explicit ssl setting in the URL turns it on.
        # (mysqlclient uses TLS only when asked.)
        if parsed.get_driver_name() == "pymysql" and not any(key.startswith("ssl") for key in parsed.query):
            connect_args["ssl_disabled"] = True
        kwargs["connect_args"] = connect_args
        kwargs["pool_recycle"] = 3600
        kwargs["pool_size"] = 5
        kwargs["max_overflow"] = 10
    kwargs.update(options)
    engine = sa.create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Store:
    """A database handle: an engine plus transaction helpers."""

    def __init__(self, url, options=None):
        self.url = url
        self.engine = make_engine(url, options)
        self._commit_listeners = []

    def add_commit_listener(self, listener):
        """Call ``listener(notes)`` after each transaction of :meth:`begin` that committed.

        ``notes`` holds what the transaction's code put in its connection's
        ``info`` under a ``saltops_`` key (for example the CMDB version it
        wrote, :func:`saltops.cmdb.version.bump`): things to publish only once
        they are in the database.
        """
        self._commit_listeners.append(listener)

    @property
    def dialect(self):
        return self.engine.dialect.name

    @contextmanager
    def begin(self):
        """A transaction: committed when the block ends, rolled back on any error.

        Raises :class:`StoreFull` when the disk under the database is full and
        :class:`StoreUnavailable` when the database cannot be reached.
        """
        notes = {}
        try:
            with self.engine.begin() as conn:
                try:
                    yield conn
                finally:
                    # conn.info outlives the checkout (it is the pooled connection's):
                    # take the notes whether the transaction commits or not.  An
                    # invalidated connection (lost mid-transaction) is never reused.
                    notes = {} if conn.invalidated else _take_notes(conn.info)
        except (exc.OperationalError, exc.InterfaceError, exc.InternalError) as err:
            self._raise_store_error(err)
            raise
        if notes:
            for listener in self._commit_listeners:
                try:
                    listener(dict(notes))
                except Exception as err:  # noqa: BLE001  (committed already: a listener must not undo that)
                    log.warning("commit listener %r failed: %s", listener, err)

    @contextmanager
    def connect(self):
        """A read-only connection (no transaction is committed)."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except (exc.OperationalError, exc.InterfaceError, exc.InternalError) as err:
            self._raise_store_error(err)
            raise

    def _raise_store_error(self, err):
        """Turn a driver error into StoreFull or StoreUnavailable; return for any other error."""
        if _is_disk_full(err):
            raise StoreFull(self.disk_full_message(err)) from err
        if _is_disconnect(err):
            raise StoreUnavailable(f"database unavailable: {_short(err)}") from err

    def disk_full_message(self, err):
        """What an operator reads when a write failed for want of space: where to free it."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite":
            where = f"the filesystem holding {os.path.abspath(url.database or ':memory:')}"
        else:
            server = f"{url.host}:{url.port or 3306}"
            where = f"the data directory (or table space) of the database server {server}"
        return (f"database cannot be written, the disk is full ({_short(err)}): free space on {where}; "
                f"writes resume by themselves once there is room")

    def migrate(self):
        """Bring the schema to the newest version (idempotent)."""
        from saltops.store.migrate import upgrade

        upgrade(self)

    def dispose(self):
        self.engine.dispose()


_NOTE_PREFIX = "saltops_"


def _take_notes(info):
    return {key: info.pop(key) for key in [k for k in info if isinstance(k, str) and k.startswith(_NOTE_PREFIX)]}


def _short(err):
    return str(getattr(err, "orig", err)).splitlines()[0][:300]


# MariaDB/MySQL errors that mean "no room to write": ER_DISK_FULL, ER_RECORD_FILE_FULL ("the table
# is full": a full disk or table space under InnoDB) and ER_OUT_OF_RESOURCES-style errors that carry
# the OS error ENOSPC (28): 1030 "Got error 28 ... from storage engine", 1026 and 3 "Error writing file".
_MYSQL_FULL = {1021, 1114}
_MYSQL_OS_ERROR = {3, 1026, 1030}
_ENOSPC = 28


def _is_disk_full(err):
    orig = getattr(err, "orig", err)
    # SQLite: SQLITE_FULL, "database or disk is full" (Python 3.11+ also names the code).
    if getattr(orig, "sqlite_errorname", None) == "SQLITE_FULL":
        return True
    text = str(orig).lower()
    if "database or disk is full" in text or "no space left on device" in text:
        return True
    args = getattr(orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    if code in _MYSQL_FULL:
        return True
    if code in _MYSQL_OS_ERROR or code == _ENOSPC:
        message = str(args[1]) if len(args) > 1 else text
        return code == _ENOSPC or "error 28" in message.lower() or "errcode: 28" in message.lower()
    return False


def _is_disconnect(err):
    if getattr(err, "connection_invalidated", False):
        return True
    text = str(getattr(err, "orig", err)).lower()
    markers = (
        "can't connect",
        "lost connection",
        "server has gone away",
        "connection refused",
        "unable to open database",
        "connection reset",
        "broken pipe",
        "timed out",
    )
    return any(m in text for m in markers) or isinstance(err, exc.InterfaceError)


def get_store(url, options=None, migrate=True):
    """The process-wide :class:`Store` for ``url``, created (and migrated) once."""
    key = (url, os.getpid())
    with _LOCK:
        store = _ENGINES.get(key)
        if store is None:
            # Drop engines inherited through fork without closing the parent's sockets.
            for old_key in [k for k in _ENGINES if k[1] != os.getpid()]:
                _ENGINES.pop(old_key).engine.dispose(close=False)
            store = Store(url, options)
            if migrate:
                store.migrate()
            _ENGINES[key] = store
        return store


def forget_stores():
    """Dispose of every cached engine (tests, and a config change)."""
    with _LOCK:
        for store in _ENGINES.values():
            store.engine.dispose()
        _ENGINES.clear()
