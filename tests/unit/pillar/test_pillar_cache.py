"""SnapshotCache on a real SQLite CMDB: full load, incremental refresh, check interval, the file."""

import os

import sqlalchemy as sa

from saltops.pillar.snapshot import read_header
from saltops.store.schema import meta
from tests.support.pillar_hosts import host, remove, update, write


def _names(view, role="web", env="prod"):
    return [b["hostname"] for b in view.snapshot.backends(role, env)]


def test_first_render_loads_everything_then_only_checks_the_version(store, sqlite_url, make_cache):
    v1 = write(store, host("web01.example.com"), host("lb01.example.com", roles=["lb"]))
    cache = make_cache(sqlite_url)
    view = cache.current()
    assert view.stale is False and view.stale_since is None
    assert view.snapshot.version == v1 and len(view.snapshot) == 2
    assert cache.stats["full_loads"] == 1
    for _ in range(5):
        assert cache.current().snapshot is view.snapshot
    assert cache.stats == {"checks": 6, "stamp_checks": 0, "full_loads": 1, "incremental": 0, "failures": 0, "persisted": 1}


def test_a_change_is_read_incrementally(store, sqlite_url, make_cache):
    write(store, host("web01.example.com"), host("web02.example.com"))
    cache = make_cache(sqlite_url)
    cache.current()
    v2 = update(store, "web01.example.com", ip="10.7.7.7")
    view = cache.current()
    assert view.snapshot.version == v2
    assert view.snapshot.record("web01.example.com")["ip"] == "10.7.7.7"
    v3 = update(store, "web02.example.com", status="maintenance")
    assert _names(cache.current()) == ["web01.example.com"]
    v4 = remove(store, "web01.example.com", purge=True)
    view = cache.current()
    assert view.snapshot.version == v4 > v3 > v2
    assert view.snapshot.record("web01.example.com") is None
    assert _names(view) == []
    assert cache.stats["full_loads"] == 1 and cache.stats["incremental"] == 3


def test_decommissioned_hosts_stay_known_but_leave_the_backends(store, sqlite_url, make_cache):
    write(store, host("web01.example.com"))
    cache = make_cache(sqlite_url)
    assert _names(cache.current()) == ["web01.example.com"]
    remove(store, "web01.example.com")
    view = cache.current()
    assert view.snapshot.record("web01.example.com")["status"] == "decommissioned"
    assert _names(view) == []


def test_version_check_interval_skips_the_database(store, sqlite_url, make_cache, clock):
    write(store, host("web01.example.com"))
    cache = make_cache(sqlite_url, check_interval=30)
    v1 = cache.current().snapshot.version
    update(store, "web01.example.com", ip="10.8.8.8")
    clock.advance(29)
    view = cache.current()
    assert view.snapshot.version == v1 and cache.stats["checks"] == 1
    clock.advance(2)
    view = cache.current()
    assert view.snapshot.version == v1 + 1 and cache.stats["checks"] == 2
    assert view.snapshot.record("web01.example.com")["ip"] == "10.8.8.8"


def test_two_workers_converge_through_the_shared_version(store, sqlite_url, make_cache):
    write(store, host("web01.example.com"))
    worker_a, worker_b = make_cache(sqlite_url), make_cache(sqlite_url)
    assert worker_a.current().snapshot.version == worker_b.current().snapshot.version
    version = write(store, host("web02.example.com"))
    assert worker_a.current().snapshot.version == version
    update(store, "web02.example.com", status="offline")
    # worker_b skipped a version: it catches up on both changes at once.
    view_b = worker_b.current()
    assert view_b.snapshot.version == version + 1
    assert _names(view_b) == ["web01.example.com"]
    assert _names(worker_a.current()) == ["web01.example.com"]


def test_a_database_whose_version_went_back_is_reloaded_whole(store, sqlite_url, make_cache):
    write(store, host("web01.example.com"))
    write(store, host("web02.example.com"))
    cache = make_cache(sqlite_url)
    assert cache.current().snapshot.version == 2
    # A restore from an older backup: version 1, web02 gone.
    with store.begin() as conn:
        conn.execute(sa.text("DELETE FROM cmdb_hosts WHERE hostname = 'web02.example.com'"))
        conn.execute(meta.update().where(meta.c.name == "cmdb_version").values(value=1))
    view = cache.current()
    assert view.snapshot.version == 1 and view.snapshot.record("web02.example.com") is None
    assert cache.stats["full_loads"] == 2


def test_snapshot_file_is_written_when_the_version_changed_and_throttled(
    store, sqlite_url, make_cache, clock
):
    write(store, host("web01.example.com"))
    cache = make_cache(sqlite_url, persist_interval=60)
    cache.current()
    path = cache.snapshot_file
    assert read_header(path)["version"] == 1 and cache.stats["persisted"] == 1
    write(store, host("web02.example.com"))
    clock.advance(10)
    assert cache.current().snapshot.version == 2
    assert read_header(path)["version"] == 1  # throttled
    clock.advance(60)
    cache.current()
    assert read_header(path)["version"] == 2 and cache.stats["persisted"] == 2
    # Another worker finds the file already at its version and does not rewrite it.
    mtime = os.stat(path).st_mtime_ns
    other = make_cache(sqlite_url)
    other.current()
    assert other.stats["persisted"] == 0 and os.stat(path).st_mtime_ns == mtime
