"""`saltops lab up | status | down` with real daemons, driven through the console script."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from saltops.cmdb import repo
from saltops.lab import demo
from saltops.store import get_store
from tests.support.haproxy import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN = Path(sys.executable).parent


def saltops(*args, check=True):
    proc = subprocess.run(
        [str(BIN / "saltops"), *args], capture_output=True, text=True, timeout=400, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"saltops {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    # pytest's tmp dirs are long: the lab has to put its sockets under /tmp.
    lab_dir = tmp_path_factory.mktemp("lab") / "a-rather-long-project-directory-name" / ".lab"
    up = saltops("lab", "up", "--json", "--dir", str(lab_dir))
    yield lab_dir, json.loads(up.stdout)
    saltops("lab", "down", "--dir", str(lab_dir), check=False)


def test_up_starts_a_master_three_minions_and_the_api(lab):
    lab_dir, up = lab
    assert up["all_up"] is True
    assert set(up["started"]) == {"master", "api", *demo.MINION_IDS}
    assert [m["id"] for m in up["minions"]] == list(demo.MINION_IDS)
    assert all(m["state"] == "up" and alive(m["pid"]) for m in up["minions"])
    assert str(lab_dir.resolve()) == up["lab_dir"]
    assert up["sock_dir"].startswith("/tmp/saltops-lab-")


def test_status_json_tells_how_to_reach_the_lab(lab):
    lab_dir, _up = lab
    status = json.loads(saltops("lab", "status", "--json", "--dir", str(lab_dir)).stdout)
    assert status["all_up"] is True
    assert Path(status["config_dir"], "master").is_file()
    assert status["api_url"].startswith("http://127.0.0.1:")
    users_file = Path(status["users_file"])
    assert users_file.stat().st_mode & 0o077 == 0
    assert {line.split(":", 1)[0] for line in users_file.read_text().splitlines()} == {
        "ops",
        "viewer",
        "deployer",
        "dev",
        "lead",
    }
    assert {m["id"]: m["state"] for m in status["minions"]} == dict.fromkeys(demo.MINION_IDS, "up")
    assert status["db_url"] == f"sqlite:///{lab_dir.resolve() / 'saltops.db'}"


def test_salt_cli_reaches_every_minion(lab):
    _lab_dir, up = lab
    proc = subprocess.run(
        [str(BIN / "salt"), "-c", up["config_dir"], "*", "test.ping", "--out=json", "--static", "-t", "30"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == dict.fromkeys(demo.MINION_IDS, True)


def test_lab_minions_have_the_saltops_modules(lab):
    _lab_dir, up = lab
    proc = subprocess.run(
        [
            str(BIN / "salt"),
            "-c",
            up["config_dir"],
            demo.WEB,
            "sys.list_modules",
            "saltops*",
            "--out=json",
            "--static",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    shipped = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "_modules").glob("*.py"))
    assert set(shipped) <= set(json.loads(proc.stdout)[demo.WEB]) | {"__init__"}


def test_api_users_log_in_with_the_generated_passwords(lab):
    _lab_dir, up = lab
    passwords = dict(line.split(":", 1) for line in Path(up["users_file"]).read_text().splitlines())
    url = up["api_url"]

    def login(user, password):
        return requests.post(
            f"{url}/login", json={"username": user, "password": password, "eauth": "file"}, timeout=30
        )

    assert login("ops", passwords["ops"]).status_code == 200
    assert login("ops", passwords["ops"] + "x").status_code == 401
    token = login("viewer", passwords["viewer"]).json()["return"][0]["token"]
    # The viewer may not run arbitrary runners.
    resp = requests.post(
        url + "/",
        json=[{"client": "runner", "fun": "test.arg", "arg": ["x"]}],
        headers={"X-Auth-Token": token, "Accept": "application/json"},
        timeout=30,
    )
    assert resp.status_code == 401


def test_up_again_keeps_the_same_daemons_and_data(lab):
    lab_dir, first = lab
    web02 = f"web02.{demo.DOMAIN}"
    changed = subprocess.run(
        [str(BIN / "salt-run"), "-c", first["config_dir"], "cmdb.update", web02, "status=offline", "--out=json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert changed.returncode == 0, changed.stderr
    again = json.loads(saltops("lab", "up", "--json", "--dir", str(lab_dir)).stdout)
    store = get_store(first["db_url"])
    with store.connect() as conn:
        assert repo.get_host(conn, web02)["status"] == "offline", "up must not re-seed a CMDB that has data"
    assert again["started"] == []
    assert again["master"]["pid"] == first["master"]["pid"]
    assert again["api"]["pid"] == first["api"]["pid"]
    assert [m["pid"] for m in again["minions"]] == [m["pid"] for m in first["minions"]]
    assert again["api_url"] == first["api_url"]
    assert Path(again["users_file"]).read_text() == Path(first["users_file"]).read_text()


def test_up_restarts_a_minion_that_died(lab):
    lab_dir, first = lab
    victim = next(m for m in first["minions"] if m["id"] == demo.DB)
    os.killpg(victim["pid"], 9)
    after = json.loads(saltops("lab", "up", "--json", "--dir", str(lab_dir)).stdout)
    assert after["started"] == [demo.DB]
    assert after["all_up"] is True
    assert after["master"]["pid"] == first["master"]["pid"]
    first["minions"] = after["minions"]


def test_the_deploy_ticket_tour_starts_from_the_seeded_people_and_template(lab):
    """docs/lab.md's deploy ticket tour, its first steps: salt-run as the lab's people with eauth ``file``
    (tests/integration/tickets/test_ticket_deploy.py walks the rest, deploy included)."""
    _lab_dir, up = lab
    passwords = dict(line.split(":", 1) for line in Path(up["users_file"]).read_text().splitlines())

    def run_as(user, *args):
        return subprocess.run([str(BIN / "salt-run"), "-c", up["config_dir"], "-a", "file",
                               "--username", user, "--password", passwords[user], *args, "--out=json"],
                              capture_output=True, text=True, timeout=120, check=False)

    def data(user, *args):
        proc = run_as(user, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout)

    template = data("dev", "ticket.templates", "name=app-deploy")
    assert template["version"] == 1 and template["body"]["action"]["fun"] == "deploy.run"
    created = data("dev", "ticket.create", "app-deploy", "app=shop", "version=9.9.9", "env=dev",
                   "artifact=http://127.0.0.1:9/shop-9.9.9.tar.gz", "sha256=" + "ab" * 32)
    assert (created["state"], created["waiting_for"]) == ("in_approval", ["lead"]), created
    assert [t["id"] for t in data("lead", "ticket.list", "scope=to_approve")] == [created["id"]]
    # dev's ACL has no approval; the lead's decision is the core's: the ticket goes on to ops.
    refused = run_as("dev", "ticket.approve", str(created["id"]))
    assert "Authentication failure of type" in refused.stdout and "occurred for user dev" in refused.stdout
    assert data("lead", "ticket.approve", str(created["id"]))["waiting_for"] == ["ops"]
    cancelled = data("dev", "ticket.cancel", str(created["id"]))
    assert cancelled["state"] == "cancelled" and cancelled["actions"] == []


def salt_cli(up, *args, tool="salt"):
    proc = subprocess.run([str(BIN / tool), "-c", up["config_dir"], *args, "--out=json"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def test_alarms_tour_raise_notify_silence_resolve(lab, tmp_path):
    """docs/lab.md's alarms tour: the engine runs with the default rules and writes to the inbox;
    the sites beacon probes web01's app at the port its CMDB record gives."""
    import http.server
    import threading

    _lab_dir, up = lab
    alarms = up["alarms"]
    assert requests.get(alarms["metrics_url"], timeout=30).status_code == 200
    inbox = Path(alarms["inbox"])

    def blocks(*texts):
        text = inbox.read_text() if inbox.exists() else ""
        return [b for b in text.split("--- ") if all(t in b for t in texts)]

    # Raise: the app's port moves to one where nothing listens; the pillar follows the CMDB.
    port = free_port()
    salt_cli(up, "cmdb.update", demo.WEB, "apps=" + json.dumps({"shop": {"port": port, "health_url": "/healthz"}}),
             tool="salt-run")
    assert wait_for(lambda: blocks("[FIRING:1] SiteDown", "site=shop", demo.WEB), 240), inbox.read_text()
    # Silence it while someone looks.
    sil = salt_cli(up, "alarm.silence_add", f'matchers=host="{demo.WEB}",alertname="SiteDown"', "duration=1h",
                   "comment=looking", tool="salt-run")
    listed = salt_cli(up, "alarm.list", "alertname=SiteDown", tool="salt-run")
    assert [(a["labels"]["host"], a["labels"]["site"]) for a in listed] == [(demo.WEB, "shop")]
    salt_cli(up, "alarm.silence_expire", sil["id"], tool="salt-run")
    # Resolve: the app answers.
    (tmp_path / "healthz").write_text("ok")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert wait_for(lambda: blocks("[RESOLVED:1] SiteDown", demo.WEB), 240), inbox.read_text()
    finally:
        server.shutdown()


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_down_stops_only_what_up_started(lab):
    lab_dir, up = lab
    # A process that is not the lab's, named by a stale pid file, must survive `down`.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        pids = [up["master"]["pid"], up["api"]["pid"], *(m["pid"] for m in up["minions"])]
        down = json.loads(saltops("lab", "down", "--json", "--dir", str(lab_dir)).stdout)
        assert set(down["stopped"]) == {"master", "api", *demo.MINION_IDS}
        assert not [pid for pid in pids if alive(pid)]
        assert not Path(up["sock_dir"]).exists()
        status = saltops("lab", "status", "--json", "--dir", str(lab_dir), check=False)
        assert status.returncode == 3
        assert all(m["state"] == "down" for m in json.loads(status.stdout)["minions"])

        Path(lab_dir, "run", "master.lab.pid").write_text(str(bystander.pid))
        again = json.loads(saltops("lab", "down", "--json", "--dir", str(lab_dir)).stdout)
        assert again["stopped"] == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
