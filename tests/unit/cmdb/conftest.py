"""One store per backend for the session (SQLite file and a fresh MariaDB database), emptied per test."""

import pytest

from saltops.store.engine import Store
from tests.unit.cmdb import cmdb_testkit


@pytest.fixture(scope="session")
def cmdb_backends(tmp_path_factory, make_mysql_database):
    made = {}

    def get(kind):
        if kind not in made:
            if kind == "sqlite":
                url = f"sqlite:///{tmp_path_factory.mktemp('cmdb')}/saltops.db"
            else:
                url = make_mysql_database("saltops_cmdb").url
            store = Store(url)
            store.migrate()
            made[kind] = store
        return made[kind]

    yield get
    for store in made.values():
        store.dispose()


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def store(request, cmdb_backends):
    s = cmdb_backends(request.param)
    cmdb_testkit.wipe(s)
    return s
