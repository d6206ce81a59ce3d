"""Engines and transactions.

One SQLAlchemy engine per database URL and process: a Salt master forks its
workers after loading modules, and a pooled connection must never be shared
across a fork, so the cache is keyed by the process id too.
"""

import os
import threading
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import event, exc

from saltops.errors import StoreUnavailable

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
        connect_args = {"connect_timeout": 5, "read_timeout": 30, "write_timeout": 30, "charset": "utf8mb4"}
        # PyMySQL 1.2 negotiates TLS by default, ~45 ms of CPU per new connection
        # even on loopback.  Only an explicit ssl setting in the URL turns it on.
        if not any(key.startswith("ssl") for key in parsed.query):
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

    @property
    def dialect(self):
        return self.engine.dialect.name

    @contextmanager
    def begin(self):
        """A transaction: committed when the block ends, rolled back on any error."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except (exc.OperationalError, exc.InterfaceError) as err:
            if _is_disconnect(err):
                raise StoreUnavailable(f"database unavailable: {_short(err)}") from err
            raise

    @contextmanager
    def connect(self):
        """A read-only connection (no transaction is committed)."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except (exc.OperationalError, exc.InterfaceError) as err:
            if _is_disconnect(err):
                raise StoreUnavailable(f"database unavailable: {_short(err)}") from err
            raise

    def migrate(self):
        """Bring the schema to the newest version (idempotent)."""
        from saltops.store.migrate import upgrade

        upgrade(self)

    def dispose(self):
        self.engine.dispose()


def _short(err):
    return str(getattr(err, "orig", err)).splitlines()[0][:300]


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
