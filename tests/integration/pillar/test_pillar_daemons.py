"""The CMDB pillar on a real salt-master and minion, with a CMDB that goes away.

Each master here has its own private MariaDB server (tests/support/
mariadb_instance.py), which the tests stop and start; the reactor map holds
``reactor/cmdb_recovered.sls`` and the ``saltops_cmdb_watch`` engine runs, so
the whole recovery path is exercised: outage -> ``saltops/cmdb/unavailable``
-> stale pillar (or, with no data ever, a failing pillar and a refused
``state.apply``) -> database back -> ``saltops/cmdb/recovered`` -> the reactor
refreshes every minion's pillar (clearing ``pillar_cache``) -> fresh data.
"""

import time

import pytest

from saltops.paths import tree
from saltops.store.engine import Store
from tests.support import saltenv
from tests.support.mariadb_instance import MariaDBInstance, available
from tests.support.pillar_hosts import host, update, write

pytestmark = [pytest.mark.integration, pytest.mark.mysql, pytest.mark.slow]

UNAVAILABLE = "saltops/cmdb/unavailable"
RECOVERED = "saltops/cmdb/recovered"
CHECK_SLS = """
saltops-pillar-check-cmdb-present:
  test.check_pillar:
    - present:
      - cmdb:known
"""


def _master_extra(pillar_cache):
    reactor_dir = tree("reactor")
    return {
        "pillar_cache": pillar_cache,
        "reactor": [
            {"saltops/cmdb/changed": [str(reactor_dir / "cmdb_changed.sls")]},
            {RECOVERED: [str(reactor_dir / "cmdb_recovered.sls")]},
        ],
        "engines": [{"saltops_cmdb_watch": {"interval": 2}}],
        "saltops": {"cmdb": {"retry_interval": 1, "event_interval": 300}},
    }


@pytest.fixture(scope="module")
def mariadb():
    problem = available()
    if problem:
        pytest.fail(problem)
    with MariaDBInstance() as instance:
        yield instance


def _cmdb(mariadb, name, minion_id):
    mariadb.start()
    url = mariadb.url(name)
    store = Store(url)
    store.migrate()
    write(
        store,
        host(minion_id, ip="10.30.0.11", roles=["base", "web"], env="dev", idc="lab"),
        host("lb09.pillar.test", ip="10.30.0.2", roles=["base", "lb"], env="dev", idc="lab"),
    )
    return url, store


def _pillar(minion, retries=3):
    cli = minion.salt_call_cli(timeout=120)
    for attempt in range(retries):
        ret = cli.run("pillar.items", unmask=True)
        if ret.returncode == 0 and isinstance(ret.data, dict):
            return ret.data
        time.sleep(2 * (attempt + 1))
    raise AssertionError(f"pillar.items failed: {ret.stdout}\n{ret.stderr}")


def _wait_for(master, tag, after, timeout=60):
    matched = master.event_listener.wait_for_events([(master.id, tag)], after_time=after, timeout=timeout)
    assert matched.found_all_events, f"no {tag} event within {timeout}s (missed: {matched.missed})"
    return next(iter(matched.matches)).data


def _wait_until(check, timeout=60, interval=1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


@pytest.mark.parametrize("pillar_cache", [False, True], ids=["no-pillar-cache", "pillar-cache"])
def test_stale_data_during_an_outage_and_recovery(saltops_master_factory, mariadb, pillar_cache):
    suffix = "c" if pillar_cache else "n"
    minion_id = f"web0{1 if pillar_cache else 2}.pillar.test"
    url, store = _cmdb(mariadb, f"ipillar_stale_{suffix}", minion_id)
    master = saltops_master_factory(f"pillar-m-{suffix}", db_url=url, extra=_master_extra(pillar_cache))
    with master.started(start_timeout=120):
        minion = master.salt_minion_daemon(minion_id, overrides=saltenv.minion_overrides())
        with minion.started(start_timeout=120):
            pillar = _pillar(minion)
            assert "_errors" not in pillar
            assert pillar["cmdb"]["known"] is True and pillar["cmdb"]["stale"] is False
            assert pillar["cmdb"]["ip"] == "10.30.0.11" and pillar["cmdb"]["roles"] == ["base", "web"]
            version = pillar["cmdb"]["version"]

            # The database goes away; the next fresh compile serves the last known good data.
            started = time.time()
            mariadb.stop()
            if pillar_cache:
                # The cached pillar would be served as is: ask for a recompile.
                assert (
                    minion.salt_call_cli(timeout=120).run("saltutil.refresh_pillar", wait=True).returncode
                    == 0
                )
            stale = _pillar(minion)
            assert "_errors" not in stale
            assert stale["cmdb"]["stale"] is True and stale["cmdb"]["stale_since"].endswith("Z")
            assert stale["cmdb"]["version"] == version and stale["cmdb"]["ip"] == "10.30.0.11"
            event = _wait_for(master, UNAVAILABLE, started)
            assert event["version"] == version and "error" in event

            # A change is made the moment the database is back.
            mariadb.start()
            back = time.time()
            new_version = update(store, minion_id, ip="10.30.0.99")
            event = _wait_for(master, RECOVERED, back - 1)
            assert event["down_seconds"] > 0
            # The reactor refreshed every minion's pillar (cache cleaned): fresh data.
            fresh = _wait_until(
                lambda: (
                    (p := _pillar(minion))["cmdb"]["stale"] is False
                    and p["cmdb"]["version"] == new_version
                    and p
                )
            )
            assert fresh["cmdb"]["ip"] == "10.30.0.99"
            # The refresh was the reactor's doing: its job is on the bus.
            jobs = master.event_listener.get_events([(master.id, "salt/job/*/new")], after_time=back - 1)
            assert any(
                e.data.get("fun") == "saltutil.refresh_pillar" and e.data.get("tgt") == "*" for e in jobs
            )


@pytest.mark.parametrize("pillar_cache", [False, True], ids=["no-pillar-cache", "pillar-cache"])
def test_no_data_ever_refuses_state_apply_until_the_database_answers(
    saltops_master_factory, mariadb, pillar_cache
):
    suffix = "c" if pillar_cache else "n"
    minion_id = f"web0{3 if pillar_cache else 4}.pillar.test"
    url, _ = _cmdb(mariadb, f"ipillar_never_{suffix}", minion_id)
    mariadb.stop()  # before the master ever reads it: no snapshot anywhere
    master = saltops_master_factory(f"pillar-e-{suffix}", db_url=url, extra=_master_extra(pillar_cache))
    with (
        master.state_tree.base.temp_file("saltops_pillar_check.sls", CHECK_SLS),
        master.started(start_timeout=120),
    ):
        minion = master.salt_minion_daemon(minion_id, overrides=saltenv.minion_overrides())
        with minion.started(start_timeout=120):
            cli = minion.salt_call_cli(timeout=120)
            pillar = _pillar(minion)
            assert "cmdb" not in pillar
            assert any("saltops_cmdb" in e and "cannot be read" in e for e in pillar["_errors"])
            refused = cli.run("state.apply", "saltops_pillar_check")
            assert refused.returncode != 0
            assert "Pillar failed to render" in refused.stdout + refused.stderr

            mariadb.start()
            back = time.time()
            # Nobody renders (and, with pillar_cache, nobody would): the watch
            # engine notices the database is back and announces it.
            _wait_for(master, RECOVERED, back - 1)
            _wait_until(lambda: "_errors" not in _pillar(minion))
            applied = cli.run("state.apply", "saltops_pillar_check")
            assert applied.returncode == 0, applied.stdout
            assert _pillar(minion)["cmdb"]["known"] is True
