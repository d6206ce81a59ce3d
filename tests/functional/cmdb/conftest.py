"""The ``cmdb`` runner through Salt's own loader, from a temp master config, with no daemons.

``runner(kind)`` gives ``call(fun, *args, user="alice", **kwargs)``, which runs
``cmdb.<fun>`` through ``salt.loader.runner`` with ``__user__`` set the way the
master sets it; the returned :class:`Runners` also has ``.opts``, ``.store`` and
``.client`` (a ``salt.runner.RunnerClient`` on the same opts).
"""

import os
import shutil
import tempfile

import pytest
import salt.config
import salt.loader
import salt.runner
import salt.utils.user
import yaml

from saltops.store import get_store
from saltops.store.engine import forget_stores
from tests.support import cmdb_kit as cmdb_testkit


class Runners:
    """One runner loader; :meth:`use` points it (its ``__opts__``) at another database.

    Salt's loader dunders resolve through the loader context of the module, and
    the module is shared by name in ``sys.modules``: a second loader over the
    same module would take over the first one's ``__opts__``.  So the tests keep
    one loader and switch its database instead.
    """

    def __init__(self, opts):
        self.opts = opts
        self.funcs = salt.loader.runner(opts, utils=salt.loader.utils(opts))
        self.client = salt.runner.RunnerClient(opts)
        self.store = None

    def use(self, db_url):
        self.opts["saltops"] = {"db_url": db_url}
        self.store = get_store(db_url)
        return self

    def __call__(self, fun, *args, user="alice", **kwargs):
        func = self.funcs[f"cmdb.{fun}"]
        func.__globals__["__user__"] = user
        return func(*args, **kwargs)


def master_opts(root, db_url, extra=None):
    for sub in ("pki", "cache/proc", "sock", "log"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    conf = {
        "root_dir": root,
        "pki_dir": f"{root}/pki",
        "cachedir": f"{root}/cache",
        "sock_dir": f"{root}/sock",
        "log_file": f"{root}/log/master",
        "user": salt.utils.user.get_user(),
        "saltops": {"db_url": db_url, **(extra or {})},
    }
    path = os.path.join(root, "master")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(conf, fh)
    return salt.config.master_config(path)


@pytest.fixture(scope="module")
def runner_root():
    path = tempfile.mkdtemp(prefix="socf-", dir="/tmp")
    yield path
    forget_stores()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def runners(runner_root, make_mysql_database):
    urls = {}
    shared = Runners(master_opts(runner_root, f"sqlite:///{runner_root}/cmdb.db"))

    def get(kind):
        if kind not in urls:
            if kind == "sqlite":
                urls[kind] = f"sqlite:///{runner_root}/cmdb.db"
            else:
                urls[kind] = make_mysql_database("saltops_fcmdb").url
        return shared.use(urls[kind])

    return get


@pytest.fixture
def run(runners):
    r = runners("sqlite")
    cmdb_testkit.wipe(r.store)
    return r


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def run_both(request, runners):
    r = runners(request.param)
    cmdb_testkit.wipe(r.store)
    return r
