"""The CMDB ext_pillar through Salt's real pillar compiler (salt.pillar.get_pillar).

The module is found the way a stock master finds it (the ``salt.loader`` entry
point's ``pillar`` dirs); the outage cases use a private MariaDB server that
the tests stop and start.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from saltops.pillar import cache as pillar_cache
from saltops.pillar.outage import OutageMarker
from saltops.store.engine import Store
from tests.functional.pillar.conftest import private_cmdb
from tests.support.mariadb_instance import free_port
from tests.support.pillar_hosts import host, update, write

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture
def sqlite_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'cmdb.db'}"
    store = Store(url)
    store.migrate()
    write(
        store,
        host("web01.example.com", ip="10.1.0.11"),
        host("web02.example.com", ip="10.1.0.12", status="maintenance"),
        host("lb01.example.com", roles=["base", "lb"], ip="10.1.0.1"),
    )
    yield url, store
    store.dispose()


@pytest.fixture
def mysql_cmdb(mariadb, request):
    url, store = private_cmdb(mariadb, "fpillar_", request)
    write(
        store,
        host("web01.example.com", ip="10.1.0.11"),
        host("lb01.example.com", roles=["lb"], ip="10.1.0.1"),
    )
    yield url, store
    store.dispose()
    mariadb.start()


def test_minion_gets_its_record_beside_the_static_pillar(sqlite_store, master_opts, render):
    url, _ = sqlite_store
    pillar = render(master_opts(url), "web01.example.com")
    assert "_errors" not in pillar
    assert pillar["static_key"] == "from_pillar_roots"
    assert pillar["cmdb"]["known"] is True and pillar["cmdb"]["ip"] == "10.1.0.11"
    assert pillar["cmdb"]["roles"] == ["base", "web"] and pillar["cmdb"]["stale"] is False
    assert "cmdb_lb" not in pillar


def test_balancer_and_unknown_minion(sqlite_store, master_opts, render):
    url, _ = sqlite_store
    opts = master_opts(url)
    lb = render(opts, "lb01.example.com")
    assert [b["hostname"] for b in lb["cmdb_lb"]["lb"]["backends"]] == ["web01.example.com"]
    stranger = render(opts, "stranger.example.com")
    assert stranger["cmdb"] == {
        "known": False,
        "hostname": "stranger.example.com",
        "status": "unknown",
        "roles": [],
        "reason": "minion id is not a CMDB hostname",
        "version": 1,
        "stale": False,
        "stale_since": None,
    }


def test_a_committed_change_shows_in_the_next_render(sqlite_store, master_opts, render):
    url, store = sqlite_store
    opts = master_opts(url, writer=store)
    assert len(render(opts, "lb01.example.com")["cmdb_lb"]["lb"]["backends"]) == 1
    version = update(store, "web02.example.com", status="online")
    lb = render(opts, "lb01.example.com")
    assert lb["cmdb"]["version"] == version
    assert [b["hostname"] for b in lb["cmdb_lb"]["lb"]["backends"]] == [
        "web01.example.com",
        "web02.example.com",
    ]


def test_options_on_the_ext_pillar_line_are_refused(sqlite_store, master_opts, render):
    url, _ = sqlite_store
    pillar = render(master_opts(url, ext_pillar=[{"saltops_cmdb": {"db_url": "x"}}]), "web01.example.com")
    assert "cmdb" not in pillar
    assert any("takes no options" in e and "saltops:cmdb" in e for e in pillar["_errors"])


def test_a_bad_saltops_config_fails_the_render(sqlite_store, master_opts, render):
    url, _ = sqlite_store
    opts = master_opts(url)
    opts["saltops"]["cmdb"]["lb_serves"] = ["lb"]
    pillar = render(opts, "web01.example.com")
    assert "cmdb" not in pillar
    assert any("lb_serves" in e for e in pillar["_errors"])


def test_no_data_ever_makes_the_pillar_fail(master_opts, render):
    url = f"mysql+pymysql://root@127.0.0.1:{free_port()}/saltops"
    pillar = render(master_opts(url), "web01.example.com")
    assert "cmdb" not in pillar
    assert pillar["static_key"] == "from_pillar_roots"
    (error,) = [e for e in pillar["_errors"] if "saltops_cmdb" in e]
    assert "cannot be read" in error and "no snapshot" in error


@pytest.mark.mysql
@pytest.mark.parametrize("pillar_cache", [False, True], ids=["no-pillar-cache", "pillar-cache"])
def test_outage_serves_stale_data_and_recovers(mysql_cmdb, mariadb, master_opts, render, pillar_cache):
    url, store = mysql_cmdb
    # Every render asks the database, so the outage is noticed at the first one after the stop.
    opts = master_opts(url, writer=store, cmdb={"version_check_interval": 0}, pillar_cache=pillar_cache)
    fresh = render(opts, "web01.example.com")
    assert fresh["cmdb"]["stale"] is False
    version = fresh["cmdb"]["version"]

    mariadb.stop()
    minion = "lb01.example.com"  # not rendered yet, so not in the pillar cache either
    stale = render(opts, minion)
    assert "_errors" not in stale
    assert stale["cmdb"]["stale"] is True and stale["cmdb"]["stale_since"].endswith("Z")
    assert stale["cmdb"]["version"] == version
    assert [b["hostname"] for b in stale["cmdb_lb"]["lb"]["backends"]] == ["web01.example.com"]
    marker = OutageMarker(_snapshot_file(opts))
    assert marker.exists()

    mariadb.start()
    new_version = update(store, "web01.example.com", ip="10.5.5.5")
    again = render(opts, minion)
    if pillar_cache:
        # Salt serves the cached (stale) pillar until it is refreshed with
        # clean_cache, which is what the recovered reactor does.
        assert again["cmdb"]["stale"] is True
        again = render(opts, minion, clean_cache=True)
    assert again["cmdb"]["stale"] is False and again["cmdb"]["version"] == new_version
    assert again["cmdb_lb"]["lb"]["backends"][0]["ip"] == "10.5.5.5"
    # No master event bus here, so "recovered" could not be announced: the
    # outage stays open for a later check (tests/integration shows the events).
    assert marker.exists()


@pytest.mark.mysql
@pytest.mark.parametrize("pillar_cache", [False, True], ids=["no-pillar-cache", "pillar-cache"])
def test_no_data_ever_then_recovery(mysql_cmdb, mariadb, master_opts, render, pillar_cache):
    url, _ = mysql_cmdb
    opts = master_opts(url, pillar_cache=pillar_cache)
    mariadb.stop()
    failed = render(opts, "web01.example.com")
    assert "cmdb" not in failed and failed["_errors"]
    mariadb.start()
    again = render(opts, "web01.example.com")
    if pillar_cache:
        # pillar_cache keeps the error: only a refresh with clean_cache clears it.
        assert "cmdb" not in again and again["_errors"] == failed["_errors"]
        again = render(opts, "web01.example.com", clean_cache=True)
    assert "_errors" not in again
    assert again["cmdb"]["known"] is True and again["cmdb"]["stale"] is False


@pytest.mark.mysql
def test_restarted_master_serves_the_snapshot_file_during_an_outage(mysql_cmdb, mariadb, master_opts, render):
    url, _ = mysql_cmdb
    opts = master_opts(url)
    version = render(opts, "web01.example.com")["cmdb"]["version"]
    assert os.path.exists(_snapshot_file(opts))
    pillar_cache.forget_caches()  # as after a master restart: nothing in memory
    mariadb.kill()
    pillar = render(opts, "web01.example.com")
    assert "_errors" not in pillar
    assert pillar["cmdb"]["stale"] is True and pillar["cmdb"]["version"] == version
    assert pillar["cmdb"]["ip"] == "10.1.0.11"


def _snapshot_file(opts):
    return os.path.join(opts["cachedir"], "saltops", "cmdb-snapshot.msgpack")


def test_a_broken_installation_is_an_error_not_a_silently_skipped_pillar(sqlite_store, tmp_path):
    """If saltops cannot be imported, the module still loads and the render fails loudly."""
    url, _ = sqlite_store
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {REPO!r})
        sys.modules["saltops.pillar.cache"] = None   # importing it now raises ImportError
        import salt.config, salt.pillar
        opts = salt.config.apply_master_config(overrides={{
            "root_dir": {str(tmp_path)!r}, "cachedir": {str(tmp_path / "c2")!r},
            "sock_dir": {str(tmp_path / "s2")!r}, "pki_dir": {str(tmp_path / "p2")!r},
            "pillar_roots": {{"base": []}}, "ext_pillar": [{{"saltops_cmdb": {{}}}}],
            "saltops": {{"db_url": {url!r}}}, "pillar_cache": False}})
        pillar = salt.pillar.get_pillar(opts, {{}}, "web01.example.com", saltenv="base").compile_pillar()
        print(json.dumps(pillar))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    import json

    pillar = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "cmdb" not in pillar
    (error,) = pillar["_errors"]
    assert "importing the saltops package failed" in error and "reinstall" in error
