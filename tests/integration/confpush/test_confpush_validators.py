"""Real validators from Debian's packages: nginx and haproxy check a file before it goes live.

A live nginx serves from the pushed config: an invalid config is refused by
``nginx -t`` on the minion, never reaches the live path, and nginx keeps
serving what it served; a valid one is reloaded (``reload_cmd``) and served.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from pytestshellutils.utils import ports

from tests.integration.confpush.conftest import CP_MINIONS, ENV, runner_data

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("nginx") is None or shutil.which("haproxy") is None,
        reason="needs nginx and haproxy: apt-get install -y nginx-light haproxy",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="nginx -t and a live nginx need root here"),
]

APP = "cpweb"


NGINX = """pid {base}/nginx.pid;
error_log {base}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  server {{
    listen 127.0.0.1:{{{{ values.port }}}};
    location / {{ return 200 "{{{{ values.greeting }}}}\\n"; }}
  }}
}}
"""

HAPROXY = """global
  maxconn 64
defaults
  mode http
  timeout connect 1s
  timeout client 1s
  timeout server 1s
frontend web
  bind 127.0.0.1:{{ values.port + 1 }}
  default_backend app
backend app
  server s1 127.0.0.1:{{ values.port }} check
"""


def _spec(base, port, greeting, nginx=None, haproxy=None):
    return {
        "roots": [base],
        "values": {"port": port, "greeting": greeting},
        "files": [
            {
                "path": f"{base}/nginx.conf",
                "template": nginx or NGINX.format(base=base),
                "validator": "nginx -q -t -c",
                "reload_cmd": f"sh -c 'test -f {base}/nginx.pid && nginx -c {base}/nginx.conf -s reload || true'",
            },
            {"path": f"{base}/haproxy.cfg", "template": haproxy or HAPROXY, "validator": "haproxy -q -c -f"},
        ],
    }


def _get(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
            return resp.read().decode()
    except OSError as err:
        return f"error: {err}"


def _wait_for(port, text):
    """nginx reloads in the background: wait (bounded) until it serves ``text``."""
    for _ in range(100):
        if _get(port) == text:
            return True
        time.sleep(0.1)
    return False


def _push(salt_run, *extra):
    """Push; while a reactor push of the same set runs, the lock refuses: try again."""
    for _ in range(120):
        ret = salt_run("confpush.push", f"app={APP}", f"env={ENV}", *extra)
        data = runner_data(ret)
        if "only one push per app and env" not in str(data.get("error")):
            return ret, data
        time.sleep(1)
    raise AssertionError(f"the push lock of {APP}/{ENV} never came free")


@pytest.fixture(scope="module")
def web(salt_run, cp_minions, cp_dir):
    base = os.path.join(cp_dir, "web")
    port = ports.get_unused_localhost_port()
    ret = salt_run("confpush.set", f"app={APP}", f"env={ENV}", f"spec={json.dumps(_spec(base, port, 'one'))}")
    assert ret.returncode == 0, ret.stdout + ret.stderr
    for name in CP_MINIONS:
        ret = salt_run("cmdb.update", name, 'apps={"cpshop": {"port": 8080}, "cpweb": {}}')
        assert ret.returncode == 0, ret.stdout + ret.stderr
    ret, data = _push(salt_run)
    assert ret.returncode == 0 and data["status"] == "succeeded", data
    started = subprocess.run(
        ["nginx", "-c", f"{base}/nginx.conf"], capture_output=True, text=True, check=False
    )
    assert started.returncode == 0, started.stderr
    assert _wait_for(port, "one\n")
    yield base, port
    subprocess.run(["nginx", "-c", f"{base}/nginx.conf", "-s", "stop"], capture_output=True, check=False)


def test_an_invalid_nginx_config_never_goes_live_and_nginx_keeps_serving(web, salt_run):
    base, port = web
    before = Path(f"{base}/nginx.conf").read_bytes()
    broken = NGINX.format(base=base).replace("access_log off;", "access_log off")
    ret = salt_run(
        "confpush.set",
        f"app={APP}",
        f"env={ENV}",
        f"spec={json.dumps(_spec(base, port, 'two', nginx=broken))}",
    )
    assert ret.returncode == 0, ret.stdout + ret.stderr
    ret, data = _push(salt_run, "batch_size=1")
    assert ret.returncode == 1 and data["status"] == "failed", data
    assert "check_cmd execution failed" in str(data["failed"])
    assert Path(f"{base}/nginx.conf").read_bytes() == before
    assert _get(port) == "one\n"


def test_an_invalid_haproxy_config_is_refused_by_haproxy(web, salt_run):
    base, port = web
    before = Path(f"{base}/haproxy.cfg").read_bytes()
    broken = HAPROXY.replace("mode http", "mode nonsense")
    ret = salt_run(
        "confpush.set",
        f"app={APP}",
        f"env={ENV}",
        f"spec={json.dumps(_spec(base, port, 'one', haproxy=broken))}",
    )
    assert ret.returncode == 0, ret.stdout + ret.stderr
    ret, data = _push(salt_run, "batch_size=1")
    assert ret.returncode == 1 and data["status"] == "failed", data
    assert Path(f"{base}/haproxy.cfg").read_bytes() == before


def test_a_valid_config_is_validated_written_and_reloaded(web, salt_run):
    base, port = web
    ret = salt_run(
        "confpush.set", f"app={APP}", f"env={ENV}", f"spec={json.dumps(_spec(base, port, 'three'))}"
    )
    assert ret.returncode == 0, ret.stdout + ret.stderr
    ret, data = _push(salt_run)
    assert ret.returncode == 0 and data["status"] == "succeeded", data
    assert _wait_for(port, "three\n"), _get(port)
