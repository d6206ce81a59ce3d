"""Blue/green end to end on real daemons: haproxy follows the flip, and a rollback flips it back.

What runs (module scope):

* a salt-master of its own (``bluegreen``, configured like every SaltOps
  master) over its own SQLite CMDB: ``lb01`` (role lb) and two web hosts in
  env ``test``, each running app ``shop`` with two slots,
  ``slots: {blue: <port>, green: <port>}`` (the short form);
* three minions: the two web hosts, which run ``saltops_release`` (each slot
  is a real instance of the tests' tiny HTTP app, on its own 127.0.0.1 port),
  and ``lb01``, as root, applying the real lb formula (haproxy from apt,
  checked with ``haproxy -c``, reloaded), as tests/integration/hecd does;
* the app's artifacts on a local HTTP server.

Every request goes through haproxy (127.0.22.2:18591) and reports the
version that answered.  Needs root and apt; skipped when a haproxy this test
did not start already runs; haproxy is stopped and its configuration put back
at the end.
"""

import os
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from saltops.lab.seed import seed
from tests.functional.deploy import deploy_appkit as kit
from tests.support import haproxy, saltenv

pytestmark = [pytest.mark.integration, pytest.mark.slow, *haproxy.NEEDS_ROOT_AND_APT]

DOMAIN = "bg.saltops"
LB = f"lb01.{DOMAIN}"
WEBS = (f"web01.{DOMAIN}", f"web02.{DOMAIN}")
LB_IP = "127.0.22.2"
FRONTEND_PORT = 18591
APP, ENV = "shop", "test"
SERVER_NAME = "shop.bg"
_COMMON = {"platform": "Debian-12", "machine_type": "container", "idc": "lab", "env": ENV}
LB_PILLAR = {
    "lb": {
        "frontend": {"port": FRONTEND_PORT},
        # The app's usual port before any blue/green deploy: nothing listens there.
        "backend_port": 18590,
        "stats": {"bind": f"{LB_IP}:18594"},
        "check": {"inter": "300ms", "fall": 1, "rise": 1},
    }
}
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def through_lb(count=6):
    """The bodies of ``count`` requests through haproxy (``None`` for a failed one)."""
    out = []
    for _ in range(count):
        request = urllib.request.Request(f"http://{LB_IP}:{FRONTEND_PORT}/", headers={"Host": SERVER_NAME})
        try:
            with _OPENER.open(request, timeout=3) as resp:
                out.append(resp.read().decode())
        except OSError:
            out.append(None)
    return out


def serves_only(version):
    return set(through_lb()) == {f"ok {version}"}


@pytest.fixture(scope="module")
def workdir():
    path = tempfile.mkdtemp(prefix="sobg-", dir="/tmp")
    yield path
    kit.stop_apps(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def web_apps(workdir):
    """``{hostname: apps:shop settings}``: a folder and three ports per web host."""
    out = {}
    for name in WEBS:
        settings = kit.app_settings(
            os.path.join(workdir, "hosts", name),
            kit.free_port(),
            slots={"blue": kit.free_port(), "green": kit.free_port()},
            server_name=SERVER_NAME,
            keep=3,
        )
        out[name] = settings
    return out


@pytest.fixture(scope="module")
def bg_db_url(workdir, web_apps):
    url = f"sqlite:///{workdir}/cmdb.db"
    hosts = [
        {**_COMMON, "hostname": LB, "ip": LB_IP, "roles": ["base", "lb"], "owner": "ops-team", "apps": {}}
    ]
    for name, settings in web_apps.items():
        hosts.append(
            {
                **_COMMON,
                "hostname": name,
                "ip": "127.0.0.1",
                "roles": ["base", "web"],
                "owner": "web-team",
                "apps": {APP: settings},
            }
        )
    seed(url, hosts=hosts)
    return url


@pytest.fixture(scope="module")
def haproxy_kept():
    with haproxy.kept_config() as before:
        yield before


@pytest.fixture(scope="module")
def bg_master(saltops_master_factory, bg_db_url, haproxy_kept):
    extra = {
        "saltops": {
            "cmdb": {"balancer_states": {"lb": "lb"}, "balancer_test": False},
            "deploy": {"return_timeout": 10, "balancer_timeout": 300},
        }
    }
    factory = saltops_master_factory("bluegreen", db_url=bg_db_url, extra=extra)
    pillar_root = Path(factory.config["pillar_roots"]["base"][0])
    kit.write_hooks_pillar(str(pillar_root))
    (pillar_root / "top.sls").write_text(
        yaml.safe_dump({"base": {"*": ["saltops", "deploy_hooks"], LB: ["bg_lb"]}}), encoding="utf-8"
    )
    (pillar_root / "bg_lb.sls").write_text(yaml.safe_dump(LB_PILLAR), encoding="utf-8")
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="module")
def minions(bg_master):
    factories = {
        LB: bg_master.salt_minion_daemon(
            LB, overrides=saltenv.minion_overrides(haproxy.lb_minion_overrides())
        )
    }
    for name in WEBS:
        factories[name] = bg_master.salt_minion_daemon(name, overrides=saltenv.minion_overrides())
    started = []
    try:
        for factory in factories.values():
            factory.start(start_timeout=120)
            started.append(factory)
        yield factories
    finally:
        for factory in reversed(started):
            factory.terminate()


@pytest.fixture(scope="module")
def lab(bg_master, minions, workdir):
    """The balancer built once by hand (``state.apply lb``), the web hosts with the release module."""
    cli = bg_master.salt_cli(timeout=600)
    for name in (LB, *WEBS):
        assert haproxy.wait_for(lambda n=name: cli.run("test.ping", minion_tgt=n).data is True, timeout=60), (
            name
        )
    for name in WEBS:
        ret = cli.run("saltutil.sync_modules", minion_tgt=name)
        assert ret.returncode == 0 and "modules.saltops_release" in ret.data, ret
    haproxy.apt_ready()
    first = cli.run("state.apply", "lb", minion_tgt=LB)
    assert first.returncode == 0, first.stdout[-5000:] + first.stderr[-2000:]
    www = os.path.join(workdir, "www")
    os.makedirs(www)
    with kit.ArtifactServer(www) as server:
        yield {"cli": cli, "run": bg_master.salt_run_cli(timeout=600), "www": www, "artifacts": server}


def _deploy(lab, version, **extra):
    path, digest = kit.build_artifact(lab["www"], version, app=APP)
    args = [
        f"app={APP}",
        f"env={ENV}",
        f"version={version}",
        f"artifact={lab['artifacts'].url(path)}",
        f"sha256={digest}",
        "strategy=blue_green",
        *(f"{k}={v}" for k, v in extra.items()),
    ]
    return lab["run"].run("deploy.run", *args)


def _status(lab, deploy_id):
    return lab["run"].run("deploy.status", deploy_id).data


def _latest(bg_db_url):
    from saltops.deploy.schema import runs

    engine = sa.create_engine(bg_db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(runs.c.id))).scalar()
    finally:
        engine.dispose()


def test_blue_green_flips_haproxy_and_rollback_flips_it_back(lab, bg_db_url, web_apps):
    # Before any blue/green deploy the balancer routes to the app's usual port: nothing answers.
    assert set(through_lb(2)) == {None}

    first = _deploy(lab, "1.0.0")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    one = _status(lab, _latest(bg_db_url))
    assert one["status"] == "succeeded" and one["slot"] == "blue", one
    assert one["flip"]["ok"] and one["flip"]["applied"] == [LB], one["flip"]
    # The flip waited for the balancer's state run: traffic has moved when the deploy returns.
    assert serves_only("1.0.0"), through_lb()

    second = _deploy(lab, "2.0.0")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    two = _status(lab, _latest(bg_db_url))
    assert two["status"] == "succeeded" and two["slot"] == "green", two
    assert serves_only("2.0.0"), through_lb()
    # The old slot still runs, on every host, for the rollback.
    for settings in web_apps.values():
        assert kit.get(f"http://127.0.0.1:{settings['slots']['blue']}/healthz") == (200, "ok 1.0.0")
    pillar = lab["cli"].run("pillar.get", "deploy_slots", "unmask=True", minion_tgt=LB).data
    assert pillar == {APP: {"active": "green"}}, pillar
    config = haproxy.HAPROXY_CFG.read_text()
    assert "# blue/green: live slot green" in config
    for settings in web_apps.values():
        assert f"127.0.0.1:{settings['slots']['green']} check" in config

    started = time.monotonic()
    back = lab["run"].run("deploy.rollback", f"app={APP}", f"env={ENV}")
    took = time.monotonic() - started
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-2000:]
    rolled = _status(lab, _latest(bg_db_url))
    assert rolled["kind"] == "rollback" and rolled["status"] == "succeeded", rolled
    assert rolled["version"] == "1.0.0" and rolled["slot"] == "blue"
    # Instant: a health check of the old slot and the flip; nothing fetched or installed.
    steps = {s["step"] for h in rolled["hosts"].values() for s in (h["steps"] or [])}
    assert steps == {"health"}, steps
    assert serves_only("1.0.0"), through_lb()
    print(f"\ninstant blue/green rollback through salt-run: {took:.1f} s")
    # And 2.0.0 still runs in the green slot for the next flip.
    for settings in web_apps.values():
        assert kit.get(f"http://127.0.0.1:{settings['slots']['green']}/healthz") == (200, "ok 2.0.0")


def test_a_flip_the_balancer_cannot_take_leaves_traffic_where_it_was(lab, bg_db_url, minions):
    assert serves_only("1.0.0"), through_lb()
    minions[LB].terminate()
    try:
        ret = _deploy(lab, "3.0.0")
        assert ret.returncode == 1, ret.stdout[-3000:]
        failed = _status(lab, _latest(bg_db_url))
        # The balancer never confirmed its pillar refresh: the flip is undone.
        assert failed["status"] in ("rolled_back", "rollback_failed"), failed
        assert "the balancers did not take slot green" in failed["error"]
        assert "not confirmed" in failed["flip"]["error"]
        slots = lab["run"].run("deploy.slots", f"env={ENV}").data
        assert slots[ENV][APP]["active"] == "blue", slots
        # haproxy kept its configuration: requests still reach 1.0.0.
        assert serves_only("1.0.0"), through_lb()
    finally:
        minions[LB].start(start_timeout=120)
