"""The database going away in the middle of an import (MariaDB): nothing half-written, then recovery.

A watcher thread waits until the import's transaction is executing a given
INSERT, then kills that connection on the server (``KILL <id>``), which is
what the client sees when the server dies or the network drops.
"""

import threading
import time

import pymysql
import pytest

from saltops.cmdb import import_export, repo
from saltops.errors import SaltOpsError, StoreUnavailable
from saltops.store.engine import Store
from tests.support import mysql as mysql_support
from tests.support.cmdb_kit import LB_SERVES, RULES, counts, many, wipe

pytestmark = pytest.mark.mysql

HOSTS = 8000


@pytest.fixture(scope="module")
def outage_store(make_mysql_database):
    database = make_mysql_database("saltops_outage")
    store = Store(database.url)
    store.migrate()
    yield store, database
    store.dispose()


def kill_when(database, statement_prefix, done, killed):
    admin = pymysql.connect(**_admin())
    try:
        with admin.cursor() as cur:
            while not done.is_set():
                cur.execute(
                    "SELECT id, info FROM information_schema.processlist WHERE db = %s AND info LIKE %s",
                    (database.name, statement_prefix + "%"),
                )
                row = cur.fetchone()
                if row:
                    cur.execute(f"KILL {int(row[0])}")
                    killed.append(row[1][:60])
                    return
                time.sleep(0.005)
    finally:
        admin.close()


def _admin():
    settings = mysql_support.server_settings()
    return {
        "host": settings["host"],
        "port": settings["port"],
        "user": settings["user"],
        "password": settings["password"],
        "autocommit": True,
        "ssl_disabled": True,
    }


@pytest.mark.parametrize(
    "stage",
    ["INSERT INTO cmdb_hosts", "INSERT INTO cmdb_host_apps", "INSERT INTO audit_log"],
)
def test_connection_killed_mid_import_leaves_nothing_half_written(outage_store, stage):
    store, database = outage_store
    # Some existing hosts that the import also updates, so that updates are interrupted too.
    existing = many(50)
    repo.write(store, "seed", existing, rules=RULES, lb_serves=LB_SERVES)
    before = counts(store)
    with store.connect() as conn:
        snapshot = repo.list_hosts(conn)

    text = import_export.export_hosts(many(50, status="maintenance") + many(HOSTS, start=1000), "csv")
    done, killed = threading.Event(), []
    watcher = threading.Thread(target=kill_when, args=(database, stage, done, killed))
    watcher.start()
    try:
        with pytest.raises(SaltOpsError) as info:
            import_export.import_hosts(store, "importer", text, "csv", RULES, lb_serves=LB_SERVES)
    finally:
        done.set()
        watcher.join()
    assert killed, f"the import finished before a {stage} statement was seen"
    assert isinstance(info.value, StoreUnavailable), info.value
    assert "database unavailable" in str(info.value)

    # Nothing of the import is visible: no hosts, no changed rows, no version, no audit, no event.
    assert counts(store) == before
    with store.connect() as conn:
        assert repo.list_hosts(conn) == snapshot

    # The database is back (the next connection is a new one): the same import now goes through whole.
    result = import_export.import_hosts(store, "importer", text, "csv", RULES, lb_serves=LB_SERVES)
    assert len(result["added"]) == HOSTS and len(result["updated"]) == 50
    after = counts(store)
    assert after["version"] == before["version"] + 1
    assert after["cmdb_hosts"] == before["cmdb_hosts"] + HOSTS
    assert after["audit_log"] == before["audit_log"] + HOSTS + 50
    wipe(store)


def test_server_unreachable_is_a_clear_error_and_writes_nothing(tmp_path):
    # A port where nothing listens: the same error as a server that is down.
    store = Store("mysql+pymysql://root@127.0.0.1:9/saltops_nowhere")
    with pytest.raises(StoreUnavailable, match="database unavailable"):
        import_export.import_hosts(store, "importer", import_export.export_hosts(many(2), "csv"), "csv", RULES)
    store.dispose()
