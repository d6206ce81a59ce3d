"""Shared fixtures for the SaltOps test suite.

Real daemons, started once per session by pytest-salt-factories and configured
exactly like the lab (``saltops.lab.config.master_overrides``): SaltOps'
file_roots / pillar_roots / ext_pillar / reactor / engines / netapi settings,
salt-api (rest_cherrypy, http on 127.0.0.1) and eauth ``file`` with the lab
users ``ops``, ``viewer`` and ``deployer`` (ACLs in ``saltops.lab.users.ACLS``).
Everything lives under a short root dir in /tmp (AF_UNIX paths are limited to
~100 bytes), removed at the end of the session.

Daemons (session scope; a test that asks for one starts it once)
  salt_master        the master (``saltops-master``); its CMDB is ``saltops_db_url``,
                     seeded with the lab's demo hosts before the master starts
  salt_minions       ``{minion id: factory}`` for the three minions, whose ids are
                     CMDB hostnames: web01/lb01/db01.lab.saltops (``MINION_IDS``),
                     with SaltOps' execution modules and beacons synced (saltutil.sync_modules, sync_beacons)
  salt_api           salt-api attached to ``salt_master``
  saltops_master_factory(master_id, db_url=None, extra=None)
                     an un-started master configured the same way, for tests that
                     need their own (another database, pillar_cache, restarts...);
                     start it with ``with factory.started(): ...``.  ``extra`` is
                     merged into the config (dicts recursively)

Helpers
  salt_run(fun, *args, **kwargs)      salt-run on the shared master, ``--out=json``;
                                      returns the ProcessResult (``.returncode``,
                                      ``.data``, ``.stdout``, ``.stderr``)
  salt_call(minion_id, fun, *args, **kwargs)
                                      salt-call on one minion, same result type
  salt_cli                            ``salt`` CLI of the master: ``salt_cli.run(
                                      "test.ping", minion_tgt="*")``
  api                                 ``tests.support.api.SaltApiClient``:
                                      ``api.run("viewer", "cmdb.list", role="web")``
                                      -> requests.Response; ``api.run_data(...)``
                                      -> the return value (asserts HTTP 200);
                                      ``api.login(user, password)`` for auth tests
  saltops_users                       ``{"file": users file, "passwords": {...}}``
  cmdb_store                          ``saltops.store.Store`` on the shared master's
                                      database, for checking what changed

Databases
  saltops_db_url     the shared master's CMDB URL: a SQLite file by default;
                     ``--saltops-db=mysql`` (or ``SALTOPS_TEST_DB=mysql``) puts it in
                     a fresh MariaDB database instead
  mysql_database     a fresh, uniquely named database on 127.0.0.1:3306 for one
                     test, dropped afterwards (``.name``, ``.url``, ``.connect()``)
  make_mysql_database(prefix="saltops_t")
                     session-scoped factory for module/session fixtures; every
                     database it made is dropped at the end of the session
  The MariaDB fixtures fail with an actionable message when the server is down.

Tests that change the shared CMDB must use their own hostnames or put back
what they changed: the master and its database live for the whole session.
"""

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from saltops.store.engine import Store
from tests.support import mysql as mysql_support
from tests.support import saltenv
from tests.support.api import SaltApiClient

MINION_IDS = saltenv.MINION_IDS


def pytest_addoption(parser):
    parser.addoption(
        "--saltops-db",
        choices=("sqlite", "mysql"),
        default=os.environ.get("SALTOPS_TEST_DB", "sqlite"),
        help="database of the shared test master's CMDB (default: sqlite; env SALTOPS_TEST_DB)",
    )


def pytest_unconfigure(config):
    # Salt's deferred console log handler (fed by pytest-salt-factories' log
    # server) keeps the stderr pytest had captured at start-up and flushes it at
    # exit, after pytest closed it: "ValueError: I/O operation on closed file".
    for handler in logging.root.handlers:
        if type(handler).__name__ == "DeferredStreamHandler":
            handler.setStream(sys.__stderr__)


# --------------------------------------------------------------------------- paths


@pytest.fixture(scope="session")
def saltops_root_dir():
    """A short scratch directory under /tmp for the whole session."""
    path = Path(tempfile.mkdtemp(prefix="so-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def salt_factories_config(saltops_root_dir):
    """pytest-salt-factories: keep every daemon's root under the short scratch dir."""
    return {"root_dir": saltops_root_dir / "daemons"}


# --------------------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def make_mysql_database():
    made = []

    def make(prefix="saltops_t"):
        problem = mysql_support.server_problem()
        if problem:
            pytest.fail(problem)
        database = mysql_support.create_database(prefix)
        made.append(database)
        return database

    yield make
    for database in made:
        database.drop()


@pytest.fixture(scope="session")
def backend_stores(tmp_path_factory, make_mysql_database):
    """``get(kind, name)`` -> a migrated Store on ``sqlite`` or ``mysql``, one per (kind, name) per session.

    Unit tests share them and empty the tables they use between tests: creating
    and migrating a database per test would cost more than the tests themselves.
    """
    made = {}

    def get(kind, name):
        if (kind, name) not in made:
            if kind == "sqlite":
                url = f"sqlite:///{tmp_path_factory.mktemp(name)}/saltops.db"
            else:
                url = make_mysql_database(f"saltops_{name}").url
            store = Store(url)
            store.migrate()
            made[kind, name] = store
        return made[kind, name]

    yield get
    for store in made.values():
        store.dispose()


@pytest.fixture
def mysql_database(make_mysql_database):
    database = make_mysql_database()
    yield database
    database.drop()


@pytest.fixture(scope="session")
def saltops_db_url(request, saltops_root_dir, make_mysql_database):
    kind = request.config.getoption("--saltops-db")
    if kind == "mysql":
        return make_mysql_database("saltops_master").url
    return f"sqlite:///{saltops_root_dir / 'saltops.db'}"


@pytest.fixture(scope="session")
def cmdb_store(saltops_db_url):
    from saltops.store import get_store

    return get_store(saltops_db_url)


# --------------------------------------------------------------------------- daemons


@pytest.fixture(scope="session")
def saltops_users(saltops_root_dir):
    users_file = saltops_root_dir / "users"
    return {"file": users_file, "passwords": saltenv.write_users(users_file)}


@pytest.fixture(scope="session")
def saltops_master_factory(salt_factories, saltops_users):
    def make(master_id, db_url=None, extra=None):
        if db_url is None:
            db_url = f"sqlite:///{salt_factories.root_dir / (master_id + '.db')}"
        return salt_factories.salt_master_daemon(
            master_id,
            overrides=saltenv.master_overrides(db_url, saltops_users["file"], extra=extra),
        )

    return make


@pytest.fixture(scope="session")
def salt_master(saltops_master_factory, saltops_db_url):
    from saltops.lab.seed import seed

    seed(saltops_db_url)
    factory = saltops_master_factory(saltenv.MASTER_ID, db_url=saltops_db_url)
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="session")
def salt_minions(salt_master):
    factories = {
        minion_id: salt_master.salt_minion_daemon(minion_id, overrides=saltenv.minion_overrides())
        for minion_id in MINION_IDS
    }
    started = []
    try:
        for factory in factories.values():
            factory.start(start_timeout=120)
            started.append(factory)
        # Like the lab: SaltOps' execution modules (salt://_modules) and the monitoring
        # beacons the pillar sets by role (salt://_beacons) on every minion.
        for sync in ("saltutil.sync_modules", "saltutil.sync_beacons"):
            ret = salt_master.salt_cli(timeout=120).run(sync, minion_tgt="*")
            assert ret.returncode == 0, ret
        yield factories
    finally:
        for factory in reversed(started):
            factory.terminate()


@pytest.fixture(scope="session")
def salt_api(salt_master):
    factory = salt_master.salt_api_daemon()
    with factory.started(start_timeout=120):
        yield factory


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="session")
def salt_cli(salt_master):
    return salt_master.salt_cli(timeout=60)


@pytest.fixture(scope="session")
def salt_run(salt_master):
    cli = salt_master.salt_run_cli(timeout=120)

    def run(fun, *args, **kwargs):
        return cli.run(fun, *args, **kwargs)

    return run


@pytest.fixture(scope="session")
def salt_call(salt_minions):
    clis = {minion_id: factory.salt_call_cli(timeout=120) for minion_id, factory in salt_minions.items()}

    def call(minion_id, fun, *args, **kwargs):
        if minion_id not in clis:
            raise KeyError(f"no test minion {minion_id!r} (known: {', '.join(clis)})")
        return clis[minion_id].run(fun, *args, **kwargs)

    return call


@pytest.fixture(scope="session")
def api(salt_api, salt_master, saltops_users):
    port = salt_master.config["rest_cherrypy"]["port"]
    return SaltApiClient(f"http://127.0.0.1:{port}", saltops_users["passwords"])
