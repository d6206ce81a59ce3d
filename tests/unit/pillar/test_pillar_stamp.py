"""The version stamp: a write through this master is seen at the next render, with no query per render."""

import pytest
import sqlalchemy as sa

from saltops.cmdb import version as cmdb_version
from tests.support.pillar_hosts import host, update, write


@pytest.fixture
def stamp_file(tmp_path):
    return str(tmp_path / "snap" / "cmdb-version.stamp")


def test_a_stamp_reads_what_was_published_and_nothing_before(stamp_file):
    reader = cmdb_version.VersionStamp(stamp_file)
    assert reader.read() == b"" and reader.version() is None
    cmdb_version.VersionStamp(stamp_file).publish(41)
    assert reader.version() == 41
    cmdb_version.VersionStamp(stamp_file).publish(42)
    # The reader's mapping follows the file: no reopen needed.
    assert reader.version() == 42


def test_only_committed_versions_are_published(store, tmp_path):
    snapshot_file = str(tmp_path / "snap" / "cmdb.msgpack")
    cmdb_version.publish_on_commit(store, snapshot_file)
    reader = cmdb_version.VersionStamp(cmdb_version.stamp_path(snapshot_file))
    version = write(store, host("web01.example.com"))
    assert reader.version() == version
    with pytest.raises(RuntimeError):
        with store.begin() as conn:
            cmdb_version.bump(conn)
            raise RuntimeError("the write fails after the bump")
    with store.connect() as conn:
        assert cmdb_version.current(conn) == version
    assert reader.version() == version
    # The next committed write publishes again.
    assert reader.version() == version and update(store, "web01.example.com", owner="ops") == version + 1
    assert reader.version() == version + 1


def test_a_published_write_is_seen_at_once_and_other_writes_within_the_interval(
    store, sqlite_url, make_cache, clock, tmp_path, stamp_file
):
    snapshot_file = str(tmp_path / "snap" / "cmdb.msgpack")
    write(store, host("web01.example.com"))
    cache = make_cache(sqlite_url, snapshot_file=snapshot_file, check_interval=60, stamp_file=stamp_file)
    first = cache.current().snapshot.version
    for _ in range(100):
        cache.current()
    assert cache.stats["checks"] == 1, "renders between changes must not ask the database"

    # A write through this master's runners (its store publishes the stamp).
    cmdb_version.publish_on_commit(store, snapshot_file)
    seen = update(store, "web01.example.com", ip="10.7.7.7")
    view = cache.current()
    assert view.snapshot.version == seen > first
    assert view.snapshot.record("web01.example.com")["ip"] == "10.7.7.7"
    assert cache.stats["stamp_checks"] == 1

    # A write this master did not publish (another master): seen once the interval has passed.
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        unseen = cmdb_version.bump(conn)
    engine.dispose()
    assert cache.current().snapshot.version == seen
    clock.advance(61)
    assert cache.current().snapshot.version == unseen
    assert cache.stats["checks"] == 3


def test_without_a_stamp_the_interval_alone_decides(store, sqlite_url, make_cache, clock):
    write(store, host("web01.example.com"))
    cache = make_cache(sqlite_url, check_interval=5)
    version = cache.current().snapshot.version
    changed = update(store, "web01.example.com", owner="ops")
    assert cache.current().snapshot.version == version
    clock.advance(5)
    assert cache.current().snapshot.version == changed
