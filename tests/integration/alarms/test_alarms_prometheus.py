"""Real Prometheus (the Debian package) scrapes the alarm engine's /metrics endpoint."""

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from saltops.alarms.service import AlarmService
from saltops.store import get_store
from tests.support.alarm_receivers import Receivers, channel_config, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def prometheus_binary():
    found = shutil.which("prometheus")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "prometheus"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900, check=False)
        found = shutil.which("prometheus")
    if not found:
        pytest.skip("the Debian package 'prometheus' is not installed and could not be installed here")
    return found


def query(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in body["data"]["result"]}


def test_prometheus_scrapes_alarm_and_notification_figures(tmp_path):
    binary = prometheus_binary()
    receivers = Receivers().start()
    store = get_store(f"sqlite:///{tmp_path / 'saltops.db'}")
    rules = {"rules": [{"name": "DiskFull", "beacon": "diskusage", "field": "diskusage", "threshold": 90,
                        "key": ["mount"]}],
             "route": {"receiver": "ops", "group_wait": "0.2s", "group_interval": "1s"},
             "receivers": {"ops": {"channels": ["hook"]}}}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    port = free_port()
    svc = AlarmService({"alarms": {"rules_file": str(tmp_path / "rules.yml"), "listen_port": port, "tick": 0.1},
                        "notify": {"channels": channel_config(receivers)}}, store)
    svc.start()
    loop = threading.Thread(target=svc.run, daemon=True)
    loop.start()
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "saltops", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
    }))
    prom = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"))
    try:
        for i in range(5):
            svc.submit_event(f"salt/beacon/h{i}/diskusage/", {"id": f"h{i}", "diskusage": 95.0, "mount": "/"})
        svc.submit_event("salt/beacon/h0/diskusage/", {"id": "h1", "diskusage": 95.0, "mount": "/"})
        assert receivers.wait("hook", 1)
        deadline = time.time() + 60
        seen = {}
        while time.time() < deadline:
            try:
                seen = {
                    "up": query(prom_port, 'up{job="saltops"}'),
                    "accepted": query(prom_port, "saltops_alarm_events_accepted_total"),
                    "rejected": query(prom_port, 'saltops_alarm_events_rejected_total{reason="id_mismatch"}'),
                    "firing": query(prom_port, 'saltops_alarms{state="firing"}'),
                    "sent": query(prom_port, 'saltops_notifications_total{channel="hook",result="ok"}'),
                    "cmdb": query(prom_port, "saltops_cmdb_version"),
                }
            except OSError:
                seen = {}
            if seen and all(seen.values()) and list(seen["sent"].values())[0] >= 1:
                break
            time.sleep(1)
        assert seen, (tmp_path / "prometheus.log").read_text()[-2000:]
        assert list(seen["up"].values()) == [1.0]
        assert list(seen["accepted"].values()) == [5.0]
        assert list(seen["rejected"].values()) == [1.0]
        assert list(seen["firing"].values()) == [5.0]
        assert list(seen["sent"].values())[0] >= 1
        assert list(seen["cmdb"].values()) == [0.0]  # the CMDB hook, read from the database at scrape time
    finally:
        prom.terminate()
        prom.wait(30)
        svc.stopping.set()
        loop.join(10)
        svc.stop()
        receivers.stop()
