"""``deploy_slots`` on balancers: the live blue/green slots, read once per CMDB change per worker."""

import pytest
import sqlalchemy as sa

from saltops import config
from saltops.cmdb import version as cmdb_version
from saltops.deploy import slots
from saltops.pillar import cache as pillar_cache
from saltops.pillar import slots as pillar_slots
from saltops.pillar.build import build
from tests.support.pillar_hosts import LB_SERVES, host, write


@pytest.fixture
def live_cache(store, sqlite_url, tmp_path):
    conf = config.load({"saltops": {"db_url": sqlite_url}, "cachedir": str(tmp_path / "cache")})
    cache = pillar_cache.cache_for(conf)
    # The test's writes are this master's: they move its version stamp, as a runner's do.
    cmdb_version.publish_on_commit(store, conf["cmdb"]["snapshot_file"])
    yield cache
    pillar_cache.forget_caches()


def render(cache, minion_id, view=None):
    """The pillar as ext_pillar_cmdb builds it: the cache's view and its live slots."""
    return build(minion_id, view or cache.current(), LB_SERVES, slots_source=pillar_slots.for_snapshot_cache(cache))


def _flip(store, app, env, slot):
    with store.begin() as conn:
        return slots.record(conn, app, env, slot, {slot: "1.0"} if slot else {}, 1, "tests")


def test_balancers_get_the_live_slots_of_their_env(store, live_cache):
    write(
        store,
        host("web01.example.com"),
        host("web09.example.com", env="staging"),
        host("lb01.example.com", roles=["base", "lb"]),
        host("lb09.example.com", roles=["base", "lb"], env="staging"),
    )
    lb = render(live_cache, "lb01.example.com")
    assert lb["deploy_slots"] == {}
    version = _flip(store, "shop", "prod", "green")
    _flip(store, "shop", "staging", "blue")
    view = live_cache.current()
    assert view.snapshot.version == version + 1
    assert render(live_cache, "lb01.example.com", view)["deploy_slots"] == {"shop": {"active": "green"}}
    assert render(live_cache, "lb09.example.com", view)["deploy_slots"] == {"shop": {"active": "blue"}}
    # Not on other hosts: only balancers route traffic.
    assert "deploy_slots" not in render(live_cache, "web01.example.com", view)


def test_the_slots_cost_no_query_per_render(store, live_cache, sqlite_url):
    write(store, host("web01.example.com"), host("lb01.example.com", roles=["base", "lb"]))
    _flip(store, "shop", "prod", "blue")
    source = pillar_slots.for_snapshot_cache(live_cache)
    for _ in range(5):
        assert render(live_cache, "lb01.example.com")["deploy_slots"] == {
            "shop": {"active": "blue"}
        }
        render(live_cache, "web01.example.com")
    assert source.reads == 1
    _flip(store, "shop", "prod", "green")
    for _ in range(3):
        assert render(live_cache, "lb01.example.com")["deploy_slots"] == {
            "shop": {"active": "green"}
        }
    assert source.reads == 2


def test_a_balancer_first_rendered_during_an_outage_keeps_the_slots(store, live_cache, sqlite_url):
    write(store, host("web01.example.com"), host("lb01.example.com", roles=["base", "lb"]))
    _flip(store, "shop", "prod", "green")
    # A web host's render reads the slots too (once per change), so this worker has them...
    render(live_cache, "web01.example.com")
    # ...when the database goes away before any balancer render.
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE saltops_meta RENAME TO saltops_meta_gone"))
    engine.dispose()
    live_cache.check_interval = 0  # the next render asks the database, as a timed check would
    view = live_cache.current()
    assert view.stale is True
    assert render(live_cache, "lb01.example.com", view)["deploy_slots"] == {"shop": {"active": "green"}}
