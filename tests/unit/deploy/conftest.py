"""A fresh store per test on SQLite and on MariaDB, with CMDB hosts to deploy to."""

import pytest

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from saltops.deploy import config as dconfig
from saltops.store.engine import Store


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/saltops.db"
    else:
        url = request.getfixturevalue("mysql_database").url
    s = Store(url)
    s.migrate()
    yield s
    s.dispose()


@pytest.fixture
def conf():
    return config.load({})


@pytest.fixture
def dconf(conf):
    return dconfig.load(conf)


@pytest.fixture
def add_hosts(store, conf):
    def add(records):
        repo.write(store, "tester", records, rules=Rules.from_config(conf), mode="upsert")

    return add
