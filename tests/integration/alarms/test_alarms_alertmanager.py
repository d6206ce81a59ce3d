"""Real Alertmanager (the Debian package) sends one group of several thousand alerts to the engine's
webhook, with its bearer token; every alert arrives, once."""

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request

import pytest
import yaml

from saltops.alarms.service import AlarmService
from saltops.store import get_store
from tests.support.alarm_receivers import Receivers, channel_config, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "am-it-2c8e4f1a9b7d3065"
ALERTS = 5000


def alertmanager_binary():
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "prometheus-alertmanager"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900, check=False)
        found = shutil.which("prometheus-alertmanager")
    if not found:
        pytest.skip("the Debian package 'prometheus-alertmanager' is not installed and could not be installed here")
    return found


def wait_for(cond, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.5)
    return cond()


def test_alertmanager_storm_arrives_whole_and_once(tmp_path):
    binary = alertmanager_binary()
    receivers = Receivers().start()
    store = get_store(f"sqlite:///{tmp_path / 'saltops.db'}")
    rules = {"rules": [{"name": "DiskFull", "beacon": "diskusage", "field": "diskusage", "threshold": 90}],
             "route": {"receiver": "ops", "group_wait": "0.5s", "group_interval": "1s"},
             "receivers": {"ops": {"channels": ["hook"], "max_alerts": 10}}}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    port = free_port()
    svc = AlarmService({"alarms": {"rules_file": str(tmp_path / "rules.yml"), "listen_port": port, "tick": 0.1,
                                   "webhook_token": TOKEN, "cmdb_labels": False},
                        "notify": {"channels": channel_config(receivers)}}, store)
    svc.start()
    loop = threading.Thread(target=svc.run, daemon=True)
    loop.start()
    am_port = free_port()
    # One group for every alert (group_by alertname); group_wait leaves time to post them all, and the
    # group_interval is longer than the test, so Alertmanager sends the group exactly once.
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump({
        "route": {"receiver": "saltops", "group_by": ["alertname"], "group_wait": "8s", "group_interval": "10m",
                  "repeat_interval": "4h"},
        "receivers": [{"name": "saltops", "webhook_configs": [{
            "url": f"http://127.0.0.1:{port}/api/v1/alertmanager", "send_resolved": True, "max_alerts": 0,
            "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}},
        }]}],
    }))
    with open(tmp_path / "alertmanager.log", "w") as am_log:
        am = subprocess.Popen([binary, f"--config.file={tmp_path / 'alertmanager.yml'}",
                               f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
                               "--cluster.listen-address="], stdout=subprocess.DEVNULL, stderr=am_log)
    try:
        def ready():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{am_port}/-/ready", timeout=2).status == 200
            except OSError:
                return False

        assert wait_for(ready, 60), (tmp_path / "alertmanager.log").read_text()[-2000:]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        alerts = [{"labels": {"alertname": "HostDiskFull", "instance": f"web{i:05d}.example.com:9100", "job": "node",
                              "severity": "warning", "mountpoint": "/var"},
                   "annotations": {"summary": f"disk /var on web{i:05d} is 93% full"},
                   "startsAt": now, "generatorURL": "http://prometheus.example.com:9090/graph"}
                  for i in range(ALERTS)]
        for start in range(0, ALERTS, 1000):
            req = urllib.request.Request(f"http://127.0.0.1:{am_port}/api/v2/alerts",
                                         data=json.dumps(alerts[start:start + 1000]).encode(),
                                         headers={"Content-Type": "application/json"})
            assert urllib.request.urlopen(req, timeout=30).status == 200

        def firing():
            return sum(n for (state, _sev), n in svc.pipeline.evaluator.counts().items() if state == "firing")

        assert wait_for(lambda: firing() >= ALERTS, 120) and firing() == ALERTS, \
            (tmp_path / "alertmanager.log").read_text()[-2000:]
        # Every alert was taken once: one request carried the whole group, nothing was refused.
        assert svc.pipeline.counters.accepted == ALERTS
        instances = {a.labels["instance"] for a in svc.pipeline.evaluator.alerts.values()}
        assert instances == {a["labels"]["instance"] for a in alerts}
        log_text = (tmp_path / "alertmanager.log").read_text()
        assert "unrecoverable" not in log_text and "Notify for alerts failed" not in log_text
        # And the group went on to the engine's own receivers, grouped.
        assert receivers.wait("hook", 1)
    finally:
        am.terminate()
        am.wait(30)
        svc.stopping.set()
        loop.join(10)
        svc.stop()
        receivers.stop()
