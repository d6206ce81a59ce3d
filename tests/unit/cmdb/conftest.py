"""The session's store per backend (SQLite file and a fresh MariaDB database), emptied per test."""

import pytest

from tests.support import cmdb_kit as cmdb_testkit


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def store(request, backend_stores):
    s = backend_stores(request.param, "cmdb")
    cmdb_testkit.wipe(s)
    return s
