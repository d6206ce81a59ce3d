"""Two ``cmdb.update`` calls on one host at the same time (MariaDB): both changes survive.

The test holds the CMDB write lock itself (``SELECT ... FOR UPDATE`` on the
version row, as a long import would), starts alice's ``status`` update and
bob's ``owner`` update in two threads, waits until the server shows both
transactions waiting for that lock, then lets go.  An update that read the
host before taking the lock would write back the record as it was before the
other one's change, and lose that change.
"""

import threading
import time

import pymysql
import pytest

from saltops.cmdb import repo
from saltops.cmdb import version as cmdb_version
from saltops.store import audit
from saltops.store.engine import Store
from tests.support import mysql as mysql_support
from tests.support.cmdb_kit import LB_SERVES, RULES, host

pytestmark = pytest.mark.mysql

NAME = "web01.bj.example.com"


def _lock_waits(database):
    """How many transactions of ``database`` wait for a row lock, as the server sees them."""
    settings = mysql_support.server_settings()
    admin = pymysql.connect(
        host=settings["host"],
        port=settings["port"],
        user=settings["user"],
        password=settings["password"],
        autocommit=True,
        ssl_disabled=True,
    )
    try:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.innodb_trx t "
                "JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id "
                "WHERE t.trx_state = 'LOCK WAIT' AND p.db = %s",
                (database,),
            )
            return cur.fetchone()[0]
    finally:
        admin.close()


@pytest.fixture
def mysql_store(mysql_database):
    # A database of its own: nothing another test left on the shared one can hold a lock here.
    store = Store(mysql_database.url)
    store.migrate()
    yield store
    store.dispose()


def test_concurrent_updates_of_different_fields_both_survive_and_are_audited_in_order(mysql_store):
    store = mysql_store
    repo.write(store, "setup", [host()], rules=RULES, lb_serves=LB_SERVES)
    results, errors = {}, []

    def update(actor, changes):
        try:
            results[actor] = repo.update(store, actor, NAME, changes, RULES, lb_serves=LB_SERVES)
        except Exception as err:  # noqa: BLE001  (reported by the assertion below)
            errors.append(err)

    threads = [
        threading.Thread(target=update, args=("alice", {"status": "maintenance"})),
        threading.Thread(target=update, args=("bob", {"owner": "bob-team"})),
    ]
    with store.begin() as holder:
        cmdb_version.lock(holder)
        for thread in threads:
            thread.start()
        # Until the server shows both waiting for the lock, or 10 s passed (well
        # inside the connections' 30 s read timeout).
        deadline = time.monotonic() + 10
        while _lock_waits(store.engine.url.database) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        # Neither update can finish while the lock is held: both still running
        # means both were blocked on it, whatever the server's lock views show.
        blocked = [thread.name for thread in threads if thread.is_alive()]
    for thread in threads:
        thread.join(60)
    assert len(blocked) == 2, f"both updates should have been waiting for the write lock (errors: {errors!r})"
    assert not errors and sorted(results) == ["alice", "bob"]
    with store.connect() as conn:
        rec = repo.get_host(conn, NAME)
        rows = audit.history(conn, object_type="host", object_id=NAME)
    assert rec["status"] == "maintenance" and rec["owner"] == "bob-team"
    first, second = sorted(rows[:2], key=lambda r: r["version"])
    # The later update's "before" is what the earlier one left: the audit chain has no gap.
    assert second["before"] == first["after"]
    assert {first["actor"], second["actor"]} == {"alice", "bob"}
    assert second["after"]["status"] == "maintenance" and second["after"]["owner"] == "bob-team"
    assert results["alice"]["version"] != results["bob"]["version"]
