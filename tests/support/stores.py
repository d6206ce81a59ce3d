"""A fresh store per test on SQLite and on the MariaDB server the suite uses (tests/support/mysql.py).

Tiers' ``conftest.py`` files import the fixtures: ``store_url`` (an empty
database), ``store`` (the same, migrated).
"""

import pytest

from saltops.store.engine import Store
from tests.support import mysql as mysql_support


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/saltops.db"
        return
    problem = mysql_support.server_problem()
    if problem:
        pytest.fail(problem)
    database = mysql_support.create_database("saltops_t")
    try:
        yield database.url
    finally:
        database.drop()


@pytest.fixture
def store(store_url):
    s = Store(store_url)
    s.migrate()
    yield s
    s.dispose()
