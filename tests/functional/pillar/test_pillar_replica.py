"""A read replica (``saltops:read_url``): pillar and alarm labels read from it, writes go to the primary.

Both ends are private MariaDB servers replicating over GTID
(tests/support/mariadb_replica.py): the shared server on 3306 runs without a
binary log.  Pillar is compiled through Salt's own pillar compiler and writes go
through the ``cmdb`` runner loaded by Salt's loader, as on a master.
"""

import re

import pytest
import salt.loader

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb import version as cmdb_version
from saltops.errors import NotFound, StoreUnavailable
from saltops.pillar.cache import labels_cache
from saltops.store.engine import Store, forget_stores
from tests.support.mariadb_instance import available
from tests.support.mariadb_replica import ReplicaPair
from tests.support.pillar_hosts import host, update, write
from tests.support.refusals import assert_refused

pytestmark = pytest.mark.mysql


@pytest.fixture(scope="module")
def pair():
    problem = available()
    if problem:
        pytest.fail(problem)
    with ReplicaPair() as servers:
        yield servers
    forget_stores()


@pytest.fixture
def db(pair, request):
    """``(primary_url, replica_url, primary_store)`` of a fresh CMDB made on the primary and replicated."""
    pair.primary.start()
    pair.resume()
    name = "replica_" + re.sub(r"\W", "_", request.node.name.replace("test_", ""))[:40]
    conn = pair.primary.connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()
    primary_url = pair.primary.url(name)
    store = Store(primary_url)
    store.migrate()
    pair.wait_caught_up()
    yield primary_url, pair.replica.url(name, create=False), store
    store.dispose()


def replica_opts(master_opts, primary_url, replica_url, **cmdb):
    settings = {"retry_interval": 0, "version_check_interval": 0, "replica_check_interval": 0, **cmdb}
    return master_opts(
        primary_url, saltops={"db_url": primary_url, "read_url": replica_url, "cmdb": settings}
    )


def test_pillar_reads_the_replica_and_shows_its_lag_as_staleness(pair, db, master_opts, render):
    primary_url, replica_url, store = db
    write(store, host("web1", ip="10.0.0.1"))
    pair.wait_caught_up()
    opts = replica_opts(master_opts, primary_url, replica_url, replica_max_lag=0)
    first = render(opts, "web1")["cmdb"]
    assert (first["ip"], first["stale"], first["stale_since"]) == ("10.0.0.1", False, None)

    pair.pause()
    newer = update(store, "web1", ip="10.0.0.2")
    lagging = render(opts, "web1")["cmdb"]
    # The replica's data (not the primary's), marked stale since the lag was seen.
    assert lagging["ip"] == "10.0.0.1" and lagging["version"] == first["version"] < newer
    assert lagging["stale"] is True and lagging["stale_since"]

    pair.resume()
    pair.wait_caught_up()
    caught_up = render(opts, "web1")["cmdb"]
    assert (caught_up["ip"], caught_up["version"], caught_up["stale"]) == ("10.0.0.2", newer, False)


def test_a_short_lag_within_replica_max_lag_is_not_stale(pair, db, master_opts, render):
    primary_url, replica_url, store = db
    write(store, host("web1", ip="10.0.0.1"))
    pair.wait_caught_up()
    opts = replica_opts(master_opts, primary_url, replica_url, replica_max_lag=3600)
    pair.pause()
    update(store, "web1", ip="10.0.0.2")
    behind = render(opts, "web1")["cmdb"]
    assert (behind["ip"], behind["stale"]) == ("10.0.0.1", False)
    pair.resume()


def test_a_write_through_this_master_counts_as_the_primarys_version(pair, db, master_opts, render):
    """The version stamp a runner publishes shows the lag even between two checks of the primary."""
    primary_url, replica_url, store = db
    write(store, host("web1", ip="10.0.0.1"))
    pair.wait_caught_up()
    opts = replica_opts(master_opts, primary_url, replica_url, replica_max_lag=0, replica_check_interval=3600)
    assert render(opts, "web1")["cmdb"]["stale"] is False
    pair.pause()
    writer = Store(primary_url)
    cmdb_version.publish_on_commit(writer, config.load(opts)["cmdb"]["snapshot_file"])
    newer = update(writer, "web1", ip="10.0.0.2")
    seen = render(opts, "web1")["cmdb"]
    assert seen["stale"] is True and seen["version"] < newer
    pair.resume()
    pair.wait_caught_up()
    assert render(opts, "web1")["cmdb"]["ip"] == "10.0.0.2"
    writer.dispose()


def test_alarm_labels_read_the_replica(pair, db, master_opts):
    primary_url, replica_url, store = db
    write(store, host("web1", roles=("base", "web")))
    pair.wait_caught_up()
    opts = replica_opts(master_opts, primary_url, replica_url)
    conf = config.load(opts)
    cache = labels_cache(conf, Store(primary_url))
    assert cache.read_url == replica_url
    pair.pause()
    update(store, "web1", roles=["base", "db"])
    assert cache.current().snapshot.record("web1")["roles"] == ["base", "web"]
    pair.resume()
    pair.wait_caught_up()
    assert cache.current().snapshot.record("web1")["roles"] == ["base", "db"]


def test_a_dead_primary_leaves_pillar_serving_stale_and_writes_refused(pair, db, master_opts, render):
    primary_url, replica_url, store = db
    write(store, host("web1", ip="10.0.0.1"))
    pair.wait_caught_up()
    opts = replica_opts(master_opts, primary_url, replica_url)
    assert render(opts, "web1")["cmdb"]["stale"] is False
    runners = salt.loader.runner(opts, utils=salt.loader.utils(opts))
    update_runner = runners["cmdb.update"]
    update_runner.__globals__["__user__"] = "alice"

    pair.primary.kill()
    served = render(opts, "web1")["cmdb"]
    assert (served["ip"], served["stale"]) == ("10.0.0.1", True) and served["stale_since"]
    assert_refused(update_runner("web1", ip="10.0.0.9"), r"database .*unavailable")
    with pytest.raises(StoreUnavailable):
        write(store, host("web2", ip="10.0.0.2"))

    pair.primary.start()
    pair.wait_caught_up()
    back = render(opts, "web1")["cmdb"]
    assert (back["ip"], back["stale"], back["version"]) == ("10.0.0.1", False, served["version"])
    with store.connect() as conn:
        with pytest.raises(NotFound):
            repo.get_host(conn, "web2")
        assert repo.get_host(conn, "web1")["ip"] == "10.0.0.1"
