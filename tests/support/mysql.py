"""Throw-away databases on the MariaDB/MySQL server the tests use (127.0.0.1:3306).

Every database is created with a unique name and dropped when the test (or the
session) that asked for it ends; the server's own databases are never touched.
Set ``SALTOPS_TEST_MYSQL`` to ``user[:password]@host:port`` to use another server.
"""

import os
import re
import secrets

import pymysql

_SPEC = re.compile(r"^(?P<user>[^:@]+)(?::(?P<password>[^@]*))?@(?P<host>[^:]+)(?::(?P<port>\d+))?$")


def server_settings():
    spec = os.environ.get("SALTOPS_TEST_MYSQL", "root@127.0.0.1:3306")
    match = _SPEC.match(spec)
    if not match:
        raise ValueError(f"SALTOPS_TEST_MYSQL must look like user[:password]@host:port, got {spec!r}")
    return {
        "user": match["user"],
        "password": match["password"] or "",
        "host": match["host"],
        "port": int(match["port"] or 3306),
    }


def _connect(**extra):
    settings = server_settings()
    return pymysql.connect(
        host=settings["host"],
        port=settings["port"],
        user=settings["user"],
        password=settings["password"],
        connect_timeout=5,
        ssl_disabled=True,
        autocommit=True,
        **extra,
    )


def server_problem():
    """``None`` when the server answers, else why it does not."""
    try:
        _connect().close()
    except pymysql.MySQLError as err:
        settings = server_settings()
        return (
            f"MariaDB/MySQL on {settings['host']}:{settings['port']} is not reachable ({err}); "
            "start it (scripts/dev test starts a local mariadbd) or set SALTOPS_TEST_MYSQL"
        )
    return None


class MysqlDatabase:
    """One uniquely named database; :attr:`url` is its SQLAlchemy URL."""

    def __init__(self, name):
        self.name = name
        settings = server_settings()
        auth = settings["user"] + (f":{settings['password']}" if settings["password"] else "")
        self.url = f"mysql+pymysql://{auth}@{settings['host']}:{settings['port']}/{name}"

    def connect(self):
        """A raw PyMySQL connection to this database (autocommit)."""
        return _connect(database=self.name)

    def drop(self):
        conn = _connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
        finally:
            conn.close()

    def __repr__(self):
        return f"MysqlDatabase({self.name!r})"


def create_database(prefix="saltops_t"):
    """Create a new empty database named ``<prefix>_<pid>_<random>``."""
    if not re.match(r"^[a-z][a-z0-9_]{0,30}$", prefix):
        raise ValueError(f"bad database prefix {prefix!r}")
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    conn = _connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    finally:
        conn.close()
    return MysqlDatabase(name)
