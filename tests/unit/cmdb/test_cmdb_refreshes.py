"""A CMDB version's pillar refresh is owed by the write that made it and claimed once.

The reactor's ``cmdb.refresh once=True`` acts only on a claim: these tests hold
the claim to its promise on SQLite and MariaDB, concurrent claimers included.
"""

import threading

import pytest
import sqlalchemy as sa

from saltops.cmdb import api, refreshes, repo
from saltops.cmdb import version as cmdb_version
from saltops.errors import ValidationError
from saltops.store.schema import meta
from tests.support.cmdb_kit import CONF, LB_SERVES, RULES, host


def write(store, records, **kw):
    return repo.write(store, "alice", records, rules=RULES, lb_serves=LB_SERVES, **kw)


def status(store, version):
    with store.connect() as conn:
        return refreshes.status(conn, version)


def test_a_write_owes_one_refresh_and_the_first_claim_takes_it(store):
    version = write(store, [host()])["version"]
    assert status(store, version) == "queued"
    assert api.claim_refresh(store, version, "Reactor") == (version, None)
    assert status(store, version) == "claimed"
    again = api.claim_refresh(store, str(version), "Reactor")
    assert again[0] == version and "already done" in again[1]


def test_updates_removes_and_imports_owe_a_refresh_and_no_op_writes_do_not(store):
    first = write(store, [host()])["version"]
    assert write(store, [host()])["version"] == first  # unchanged: no version, no new row
    dry = write(store, [host(status="maintenance")], dry_run=True)
    assert dry["version"] == first
    updated = repo.update(store, "bob", "web01.bj.example.com", {"owner": "ops"}, RULES)["version"]
    removed = repo.remove(store, "bob", ["web01.bj.example.com"])["version"]
    imported = api.import_hosts(
        store, CONF, "carol", text="hostname,ip,roles,platform,machine_type,idc,env,owner\n"
        "db9.x.com,10.0.0.9,db,Debian-12,vm,lab,dev,dba\n", fmt="csv"
    )["version"]
    assert [status(store, v) for v in (first, updated, removed, imported)] == ["queued"] * 4
    assert first < updated < removed < imported


def test_a_version_no_write_queued_is_never_claimed(store):
    written = write(store, [host()])["version"]
    # A version counted by something that announces no change (a deploy flip bumps it so).
    with store.begin() as conn:
        bumped = cmdb_version.bump(conn)
    version, why = api.claim_refresh(store, bumped, "Reactor")
    assert version == bumped and "no CMDB write queued a refresh" in why
    future, why = api.claim_refresh(store, bumped + 50, "Reactor")
    assert future == bumped + 50 and "does not exist yet" in why
    assert status(store, bumped) is None and status(store, written) == "queued"


@pytest.mark.parametrize("bad", ["web01", "", None, True, 0, -1, "1; DROP TABLE x"])
def test_what_is_not_a_version_is_refused_before_any_claim(store, bad):
    with pytest.raises(ValidationError):
        api.claim_refresh(store, bad, "Reactor")


def test_of_many_concurrent_claims_exactly_one_wins(store):
    version = write(store, [host()])["version"]
    gate = threading.Barrier(8)
    results, errors = [], []

    def claim():
        try:
            gate.wait()
            results.append(refreshes.claim(store, version, "Reactor"))
        except Exception as err:  # noqa: BLE001  (reported by the assertion below)
            errors.append(err)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and sorted(results) == [False] * 7 + [True]


def test_old_rows_are_dropped_when_a_write_queues_its_own(store):
    first = write(store, [host()])["version"]
    with store.begin() as conn:
        # Versions counted without a CMDB write (deploy flips), as many as a row is kept for.
        conn.execute(
            meta.update().where(meta.c.name == cmdb_version.KEY).values(value=meta.c.value + refreshes.KEEP_VERSIONS)
        )
    later = write(store, [host(owner="ops")])["version"]
    assert later >= first + refreshes.KEEP_VERSIONS
    assert status(store, first) is None and status(store, later) == "queued"
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(refreshes.refreshes)).scalar() >= 1
