"""A fresh store per test on SQLite and on the MariaDB server at 127.0.0.1:3306."""

import uuid

import pymysql
import pytest

from saltops.store.engine import Store

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


def mariadb_available():
    try:
        pymysql.connect(connect_timeout=2, **MARIADB).close()
        return True
    except pymysql.MySQLError:
        return False


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/saltops.db"
        return
    if not mariadb_available():
        pytest.fail("MariaDB is not reachable on 127.0.0.1:3306 (scripts/dev test starts it)")
    name = f"saltops_t_{uuid.uuid4().hex[:12]}"
    conn = pymysql.connect(**MARIADB)
    conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield f"mysql+pymysql://root@127.0.0.1:3306/{name}"
    finally:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture
def store(store_url):
    s = Store(store_url)
    s.migrate()
    yield s
    s.dispose()
