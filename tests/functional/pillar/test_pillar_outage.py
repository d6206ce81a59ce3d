"""Database outages: stale data, the snapshot file, events once per outage, recovery.

The database is a private MariaDB server (tests/support/mariadb_instance.py)
that the tests stop and start; the shared server on 3306 is never touched.
"""


import pytest

from saltops.pillar.cache import CmdbUnavailable
from saltops.pillar.outage import RECOVERED_TAG, UNAVAILABLE_TAG, OutageMarker
from tests.functional.pillar.conftest import private_cmdb
from tests.support.mariadb_instance import free_port
from tests.support.pillar_hosts import host, update, write

pytestmark = pytest.mark.mysql


@pytest.fixture
def db(mariadb, request):
    """A fresh CMDB database on the private server, which is running when the test starts."""
    url, store = private_cmdb(mariadb, "pillar_", request)
    yield url, store
    store.dispose()
    mariadb.start()


# -- the shared marker ----------------------------------------------------------


def test_marker_fires_unavailable_once_per_interval_across_processes(tmp_path, clock, events):
    path = str(tmp_path / "snap")
    worker_a, worker_b = OutageMarker(path), OutageMarker(path)
    since = worker_a.failed(clock(), "boom", 300, events)
    assert events.tags() == [UNAVAILABLE_TAG] and since == clock()
    clock.advance(10)
    assert worker_b.failed(clock(), "boom", 300, events) == since  # shared start time
    assert events.tags() == [UNAVAILABLE_TAG]
    clock.advance(300)
    worker_b.failed(clock(), "boom", 300, events)
    assert events.tags() == [UNAVAILABLE_TAG, UNAVAILABLE_TAG]
    assert events.fired[1][1]["events"] == 2 and events.fired[1][1]["error"] == "boom"


def test_marker_fires_recovered_exactly_once(tmp_path, clock, events):
    path = str(tmp_path / "snap")
    worker_a, worker_b = OutageMarker(path), OutageMarker(path)
    assert worker_a.recovered(clock(), events) is None  # no outage, nothing fired
    worker_a.failed(clock(), "boom", 300, events)
    clock.advance(42)
    assert worker_b.recovered(clock(), events) is not None
    assert worker_a.recovered(clock(), events) is None
    assert events.tags() == [UNAVAILABLE_TAG, RECOVERED_TAG]
    assert events.fired[1][1]["down_seconds"] == 42
    assert not worker_a.exists()


def test_marker_keeps_the_outage_open_until_recovered_is_delivered(tmp_path, clock, events):
    marker = OutageMarker(str(tmp_path / "snap"))
    events.fail = True
    marker.failed(clock(), "boom", 300, events)
    assert marker.exists() and events.fired == []
    # Undelivered "unavailable" is retried at the next failure, not after 300 s.
    events.fail = False
    clock.advance(1)
    marker.failed(clock(), "boom", 300, events)
    assert events.tags() == [UNAVAILABLE_TAG]
    events.fail = True
    assert marker.recovered(clock(), events) is None
    assert marker.exists()
    events.fail = False
    assert marker.recovered(clock(), events) is not None
    assert events.tags() == [UNAVAILABLE_TAG, RECOVERED_TAG] and not marker.exists()


def test_an_unreadable_marker_is_replaced(tmp_path, clock, events):
    marker = OutageMarker(str(tmp_path / "snap"))
    with open(marker.path, "w") as fh:
        fh.write("{not json")
    marker.failed(clock(), "boom", 300, events)
    assert marker.since() == clock() and events.tags() == [UNAVAILABLE_TAG]


# -- the cache against a real server that goes away ---------------------------------


def test_never_read_and_unreachable_raises_a_clear_error(tmp_path, make_cache, events):
    url = f"mysql+pymysql://root@127.0.0.1:{free_port()}/saltops"
    cache = make_cache(url)
    with pytest.raises(CmdbUnavailable) as err:
        cache.current()
    text = str(err.value)
    assert "cannot be read" in text and "no snapshot" in text and "127.0.0.1" in text
    assert events.tags() == [UNAVAILABLE_TAG]
    assert events.fired[0][1]["version"] is None
    # Still failing, from memory, during the retry interval (no new connection attempt).
    with pytest.raises(CmdbUnavailable):
        cache.current()
    assert cache.stats["checks"] == 1


def test_outage_serves_stale_data_then_recovers(db, mariadb, make_cache, clock, events):
    url, store = db
    version = write(store, host("web01.example.com"), host("lb01.example.com", roles=["lb"]))
    cache = make_cache(url, retry_interval=5)
    assert cache.current().stale is False

    mariadb.stop()
    view = cache.current()
    assert view.stale is True and view.stale_since == clock()
    assert view.snapshot.version == version
    assert view.snapshot.record("web01.example.com")["hostname"] == "web01.example.com"
    assert events.tags() == [UNAVAILABLE_TAG]
    assert events.fired[0][1]["version"] == version

    # Within the retry interval the database is not tried again.
    clock.advance(3)
    assert cache.current().stale is True and cache.stats["checks"] == 2
    # After it, it is tried (and fails) again; no second event yet (event_interval).
    clock.advance(3)
    assert cache.current().stale_since == clock.now - 6 and cache.stats["checks"] == 3
    assert events.tags() == [UNAVAILABLE_TAG]

    mariadb.start()
    clock.advance(5)
    view = cache.current()
    assert view.stale is False and view.stale_since is None
    assert events.tags() == [UNAVAILABLE_TAG, RECOVERED_TAG]
    assert events.fired[1][1]["down_seconds"] == 11
    # Changes made after the recovery are read as usual.
    new_version = update(store, "web01.example.com", ip="10.3.3.3")
    clock.advance(1)
    assert cache.current().snapshot.version == new_version


def test_a_restarted_master_serves_the_snapshot_file_while_the_database_is_down(
    db, mariadb, make_cache, clock, events
):
    url, store = db
    version = write(store, host("web01.example.com"))
    first = make_cache(url)
    first.current()  # writes the snapshot file
    mariadb.kill()
    fresh = make_cache(url)  # a new worker process: nothing in memory
    view = fresh.current()
    assert view.stale is True and view.snapshot.source == "file"
    assert view.snapshot.version == version
    assert view.snapshot.record("web01.example.com")["ip"] == "10.1.0.1"
    mariadb.start()
    v2 = update(store, "web01.example.com", ip="10.4.4.4")
    clock.advance(10)
    view = fresh.current()
    # Back on the database: a full load replaces the file's data.
    assert view.stale is False and view.snapshot.source == "database"
    assert view.snapshot.version == v2 and view.snapshot.record("web01.example.com")["ip"] == "10.4.4.4"
    assert fresh.stats["full_loads"] == 1
    assert events.tags() == [UNAVAILABLE_TAG, RECOVERED_TAG]


def test_a_dead_pooled_connection_is_replaced_without_going_stale(db, mariadb, make_cache, events):
    url, store = db
    write(store, host("web01.example.com"))
    cache = make_cache(url)
    cache.current()
    # The server restarts between two renders: the pooled connection is dead.
    mariadb.stop()
    mariadb.start()
    view = cache.current()
    assert view.stale is False and cache.stats["failures"] == 0
    assert events.fired == []


def test_probe_announces_recovery_without_a_render(db, mariadb, make_cache, clock, events):
    url, store = db
    write(store, host("web01.example.com"))
    worker = make_cache(url)
    worker.current()
    watcher = make_cache(url)
    assert watcher.probe() == "ok"
    mariadb.stop()
    assert worker.current().stale is True
    clock.advance(400)
    assert watcher.probe() == "unavailable"
    assert events.tags() == [UNAVAILABLE_TAG, UNAVAILABLE_TAG]  # reminder after event_interval
    mariadb.start()
    assert watcher.probe() == "recovered"
    assert events.tags()[-1] == RECOVERED_TAG
    # The worker's own next check finds the outage already closed: no second "recovered".
    clock.advance(10)
    assert worker.current().stale is False
    assert events.tags().count(RECOVERED_TAG) == 1
