"""The monitoring beacons (salt://_beacons) on a real minion: each raises an alarm and resolves it.

CPU and bandwidth are driven by their thresholds (set through the pillar, as an operator
would); the sites beacon by a local HTTP server going up; the supervisor beacon by a real
supervisord whose program is stopped and started.
"""

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from conftest import alarm_master, wait_for

from tests.support.alarm_receivers import channel_config, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MINION = "mon-web01.lab.saltops"

RULES = {
    "defaults": {"resolve_after": "10m"},
    "rules": [
        # `above` is the beacon's own verdict against the threshold the pillar gave it.
        {"name": "CpuHigh", "beacon": "mon_cpu", "field": "above", "op": "==", "threshold": True},
        {"name": "BandwidthHigh", "beacon": "mon_bandwidth", "key_from_tag": "interface", "field": "above",
         "op": "==", "threshold": True},
        {"name": "SiteDown", "beacon": "mon_sites", "key_from_tag": "site", "field": "ok", "op": "==",
         "threshold": False},
        {"name": "SupervisorProgramDown", "beacon": "mon_supervisor", "key_from_tag": "program",
         "field": "running", "op": "==", "threshold": False},
    ],
    "route": {"receiver": "ops", "group_by": ["alertname", "host"], "group_wait": "1s", "group_interval": "2s"},
    "receivers": {"ops": {"channels": ["hook"]}},
}

SUPERVISOR_BIN = Path(sys.executable).parent


def beacons(site_port, cpu_percent, lo_mbps, supervisor=None):
    """The test's own beacons, named apart from the shipped pillar's (whose lists PillarStack would merge)."""
    out = {
        "mon_cpu": [{"beacon_module": "saltops_cpu"}, {"percent": cpu_percent}, {"interval": 2}],
        "mon_bandwidth": [{"beacon_module": "saltops_bandwidth"}, {"interfaces": {"lo": lo_mbps}}, {"interval": 2}],
        "mon_sites": [{"beacon_module": "saltops_sites"},
                      {"sites": {"shop": {"url": f"http://127.0.0.1:{site_port}/healthz", "timeout": 2}}},
                      {"interval": 2}],
    }
    if supervisor:
        out["mon_supervisor"] = [{"beacon_module": "saltops_supervisor"}, {"programs": ["shop"]},
                                 {"conf_file": supervisor}, {"bin_env": str(SUPERVISOR_BIN.parent)},
                                 {"interval": 2}]
    return out


@pytest.fixture(scope="module")
def supervisord(tmp_path_factory):
    if not (SUPERVISOR_BIN / "supervisord").exists():
        yield None
        return
    root = tmp_path_factory.mktemp("sup")
    sock = f"/tmp/saltops-sup-{os.getpid()}.sock"
    conf = root / "supervisord.conf"
    conf.write_text(f"""[unix_http_server]
file={sock}
[supervisord]
logfile={root}/supervisord.log
pidfile={root}/supervisord.pid
nodaemon=true
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{sock}
[program:shop]
command={sys.executable} -c "import time; time.sleep(3600)"
autostart=true
startsecs=0
""")
    proc = subprocess.Popen([str(SUPERVISOR_BIN / "supervisord"), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ctl = [str(SUPERVISOR_BIN / "supervisorctl"), "-c", str(conf)]
    assert wait_for(lambda: b"RUNNING" in subprocess.run(ctl + ["status", "shop"], capture_output=True).stdout, 60)
    yield {"conf": str(conf), "ctl": ctl}
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def mon_env(saltops_master_factory, salt_factories, tmp_path_factory, supervisord):
    from tests.support.alarm_receivers import Receivers

    receivers = Receivers().start()
    root = tmp_path_factory.mktemp("mon")
    site_port = free_port()
    sup = supervisord["conf"] if supervisord else None
    with alarm_master(saltops_master_factory, salt_factories, root, "mon-master", MINION, RULES,
                      beacons(site_port, 0, 0, sup), channel_config(receivers)) as env:
        call = env["minion"].salt_call_cli(timeout=120)
        # The beacons come from salt://_beacons (their memory, saltops_beaconstate, from salt://_modules).
        assert call.run("saltutil.sync_modules").returncode == 0
        assert call.run("saltutil.sync_beacons").returncode == 0

        def set_beacons(**over):
            args = {"site_port": site_port, "cpu_percent": 0, "lo_mbps": 0, "supervisor": sup, **over}
            (root / "stack" / "alarms.yml").write_text(yaml.safe_dump({"beacons": beacons(**args)}))
            assert call.run("saltutil.refresh_pillar", "wait=True").returncode == 0

        yield {**env, "receivers": receivers, "site_port": site_port, "set_beacons": set_beacons}
    receivers.stop()


def statuses(env, alertname, key=None):
    """``[firing|resolved, ...]`` of the alert ``alertname`` (with key label ``key``) as notified."""
    out = []
    for group in env["receivers"].of("hook"):
        for alert in group["body"]["alerts"]:
            labels = alert["labels"]
            if labels["alertname"] == alertname and labels["host"] == MINION and (key is None or key in labels.values()):
                out.append(alert["status"])
    return out


def test_cpu_use_above_its_threshold_raises_and_resolves(mon_env):
    assert wait_for(lambda: "firing" in statuses(mon_env, "CpuHigh"), 120)
    mon_env["set_beacons"](cpu_percent=100)
    assert wait_for(lambda: "resolved" in statuses(mon_env, "CpuHigh"), 120)


def test_bandwidth_per_interface_raises_and_resolves(mon_env):
    assert wait_for(lambda: "firing" in statuses(mon_env, "BandwidthHigh", "lo"), 120)
    mon_env["set_beacons"](cpu_percent=100, lo_mbps=100000)
    assert wait_for(lambda: "resolved" in statuses(mon_env, "BandwidthHigh", "lo"), 120)


def test_a_site_that_starts_answering_resolves(mon_env, tmp_path):
    assert wait_for(lambda: "firing" in statuses(mon_env, "SiteDown", "shop"), 120)
    (tmp_path / "healthz").write_text("ok")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", mon_env["site_port"]),
        lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert wait_for(lambda: "resolved" in statuses(mon_env, "SiteDown", "shop"), 120)
    finally:
        server.shutdown()


def test_a_supervisor_program_stopped_then_started(mon_env, supervisord):
    if supervisord is None:
        pytest.skip("supervisord is not installed beside this Python (the test extra installs it)")
    assert not statuses(mon_env, "SupervisorProgramDown", "shop")  # running: nothing to say
    subprocess.run(supervisord["ctl"] + ["stop", "shop"], check=True, capture_output=True)
    assert wait_for(lambda: "firing" in statuses(mon_env, "SupervisorProgramDown", "shop"), 120)
    subprocess.run(supervisord["ctl"] + ["start", "shop"], check=True, capture_output=True)
    assert wait_for(lambda: "resolved" in statuses(mon_env, "SupervisorProgramDown", "shop"), 120)
