"""The ``confpush`` runner through Salt's own loader, from a temp master config, on a SQLite store."""

import shutil
import tempfile

import pytest

from saltops.store.engine import forget_stores
from tests.functional.cmdb.conftest import Runners, master_opts


class ConfpushRunners(Runners):
    def __call__(self, fun, *args, user="alice", **kwargs):
        func = self.funcs[f"confpush.{fun}"]
        func.__globals__["__user__"] = user
        return func(*args, **kwargs)


@pytest.fixture(scope="module")
def run():
    root = tempfile.mkdtemp(prefix="socp-", dir="/tmp")
    url = f"sqlite:///{root}/saltops.db"
    yield ConfpushRunners(master_opts(root, url)).use(url)
    forget_stores()
    shutil.rmtree(root, ignore_errors=True)
