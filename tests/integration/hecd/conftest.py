"""The HECD loop on real daemons: a master of its own, a balancer minion applying `lb` for real.

What runs (module scope, started once for the tests of ``test_hecd_flow.py``):

* one small real HTTP server per web host (``backends``), on 127.0.20.1x:18580
  (the web role's nginx port as the lb formula sees it, ``lb:backend_port``);
  each answers every GET with ``{"app", "host", "path"}``, so a reply through the
  balancer says which backend served it.  They stand in for nginx + gunicorn:
  the web state cannot run once per host on one machine (one nginx, one
  /etc/nginx), and tests/states/test_apply_local.py already applies it for real;
* a salt-master (``hecd``) configured like every SaltOps master
  (``saltops_master_factory``: saltops_cmdb ext_pillar, the reactor on
  ``saltops/cmdb/changed``...) over its own SQLite CMDB holding ``lb01`` and the
  web hosts (and two balancers that only exist in the CMDB), with a pillar file that moves haproxy off the default ports onto
  127.0.20.x (``lb:frontend:port``, ``lb:backend_port``, ``lb:stats:bind``);
* one minion, ``lb01.hecd.saltops``, running as root, which applies the lb
  formula for real: haproxy from apt, /etc/haproxy/haproxy.cfg checked with
  ``haproxy -c`` before it is installed, haproxy started and reloaded through
  its init script where systemd is not PID 1 (``disable_modules:
  [systemd_service]``, as the local apply tests do).

Needs root and apt (the formula installs haproxy with apt); skipped otherwise,
and skipped when a haproxy this test did not start already runs.  At the end
haproxy is stopped and /etc/haproxy/haproxy.cfg is put back as it was.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from saltops.lab.seed import seed
from tests.support import haproxy, saltenv
from tests.support.haproxy import HAPROXY_CFG, wait_for  # noqa: F401 - the tests import them from here

DOMAIN = "hecd.saltops"
LB = f"lb01.{DOMAIN}"
WEB1, WEB2, WEB3 = (f"web0{i}.{DOMAIN}" for i in (1, 2, 3))
LB_IP = "127.0.20.2"
WEB_IPS = {WEB1: "127.0.20.11", WEB2: "127.0.20.12", WEB3: "127.0.20.13"}
FRONTEND_PORT = 18581
BACKEND_PORT = 18580
STATS = f"{LB_IP}:18504"
SERVER_NAME = "shop.hecd"
SHOP = {"port": 18000, "health_url": "/healthz", "server_name": SERVER_NAME}

_COMMON = {"platform": "Debian-12", "machine_type": "container", "idc": "lab", "env": "test"}


def web_record(hostname, **over):
    rec = {
        **_COMMON,
        "hostname": hostname,
        "ip": WEB_IPS[hostname],
        "roles": ["base", "web"],
        "owner": "web-team",
        "apps": {"shop": dict(SHOP)},
    }
    rec.update(over)
    return rec


# Two more balancers of the env exist only in the CMDB: LB2 has no minion (it
# cannot confirm a pillar refresh), LB3 is offline.  Neither gets the state.
LB2, LB3 = f"lb02.{DOMAIN}", f"lb03.{DOMAIN}"

HOSTS = [
    {**_COMMON, "hostname": LB, "ip": LB_IP, "roles": ["base", "lb"], "owner": "ops-team", "apps": {}},
    {**_COMMON, "hostname": LB2, "ip": "127.0.20.3", "roles": ["base", "lb"], "owner": "ops-team"},
    {
        **_COMMON,
        "hostname": LB3,
        "ip": "127.0.20.4",
        "roles": ["base", "lb"],
        "owner": "ops-team",
        "status": "offline",
    },
    web_record(WEB1),
    web_record(WEB2),
]

# The balancer's parameters for this machine (pillar `lb:`, stacked over the
# formula's defaults by lb/map.jinja): loopback addresses, ports nobody else
# uses, and quick health checks so that a host coming back is seen in a second.
LB_PILLAR = {
    "lb": {
        "frontend": {"port": FRONTEND_PORT},
        "backend_port": BACKEND_PORT,
        "stats": {"bind": STATS},
        "check": {"inter": "500ms", "fall": 2, "rise": 1},
    }
}


class _Backend(BaseHTTPRequestHandler):
    server_version = "hecd-backend"

    def do_GET(self):
        body = json.dumps({"app": "shop", "host": self.server.hostname, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # health checks every 500 ms: keep the test output clean
        pass


class _BackendServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # haproxy's health checks may close before the reply is written: not an error here.
        pass


@pytest.fixture(scope="module")
def backends():
    """``{hostname: server}``: one real HTTP server per web host, on its CMDB address."""
    servers = {}
    try:
        for hostname, address in WEB_IPS.items():
            server = _BackendServer((address, BACKEND_PORT), _Backend)
            server.hostname = hostname
            threading.Thread(target=server.serve_forever, name=f"backend-{hostname}", daemon=True).start()
            servers[hostname] = server
        yield servers
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def haproxy_config_kept():
    """Skip when a haproxy of someone else runs; put /etc/haproxy/haproxy.cfg back at the end."""
    with haproxy.kept_config() as before:
        yield before


@pytest.fixture(scope="module")
def hecd_db_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('hecd') / 'cmdb.db'}"
    seed(url, hosts=[dict(h) for h in HOSTS])
    return url


@pytest.fixture(scope="module")
def hecd_master(saltops_master_factory, hecd_db_url, haproxy_config_kept):
    # The defaults, stated: the balancer state is applied for real, even where a
    # shared test configuration would choose test mode for its own masters.
    extra = {"saltops": {"cmdb": {"balancer_states": {"lb": "lb"}, "balancer_test": False}}}
    factory = saltops_master_factory("hecd-master", db_url=hecd_db_url, extra=extra)
    # pytest-salt-factories puts its own pillar root first: its top file wins, so
    # it lists the repository's `saltops` pillar as pillar/top.sls does, and ours.
    pillar_root = Path(factory.config["pillar_roots"]["base"][0])
    (pillar_root / "top.sls").write_text(
        yaml.safe_dump({"base": {"*": ["saltops"], LB: ["hecd_lb"]}}), encoding="utf-8"
    )
    (pillar_root / "hecd_lb.sls").write_text(yaml.safe_dump(LB_PILLAR), encoding="utf-8")
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="module")
def lb_minion(hecd_master):
    factory = hecd_master.salt_minion_daemon(
        LB, overrides=saltenv.minion_overrides(haproxy.lb_minion_overrides())
    )
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="module")
def hecd(hecd_master, lb_minion, backends):
    """The balancer built once by hand (`state.apply lb`), as an operator would before the loop runs."""
    cli = hecd_master.salt_cli(timeout=600)
    assert wait_for(lambda: cli.run("test.ping", minion_tgt=LB).data is True, timeout=60), (
        "lb01 does not answer"
    )
    haproxy.apt_ready()
    started = time.monotonic()
    first = cli.run("state.apply", "lb", minion_tgt=LB)
    assert first.returncode == 0, first.stdout[-5000:] + first.stderr[-2000:]
    return {
        "master": hecd_master,
        "minion": lb_minion,
        "cli": cli,
        "run": hecd_master.salt_run_cli(timeout=600),
        "backends": backends,
        "first_apply_seconds": time.monotonic() - started,
    }
