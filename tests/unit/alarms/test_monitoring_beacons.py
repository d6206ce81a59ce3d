"""The minion-side monitoring beacons (salt/fileroot/_beacons) and their memory
(_modules/saltops_beaconstate.py), loaded as Salt would, with their dunders given."""

import collections
import http.server
import importlib.util
import pathlib
import threading
import types

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def load(path, name, **dunders):
    spec = importlib.util.spec_from_file_location(f"saltops_beacon_test_{name}", ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for key, value in dunders.items():
        setattr(module, key, value)
    return module


@pytest.fixture
def salt_fns(tmp_path):
    state = load("_modules/saltops_beaconstate.py", "state", __opts__={"cachedir": str(tmp_path)})
    return {"saltops_beaconstate.load": state.load, "saltops_beaconstate.save": state.save}


def beacon(name, salt_fns):
    """A fresh module each time: Salt reloads beacons (and renews __context__) at every pillar refresh."""
    return load(f"salt/fileroot/_beacons/{name}.py", name, __salt__=salt_fns, __context__={})


def test_state_files_are_private_and_names_are_checked(tmp_path, salt_fns):
    salt_fns["saltops_beaconstate.save"]("mon_cpu", {"above": True})
    assert salt_fns["saltops_beaconstate.load"]("mon_cpu") == {"above": True}
    assert salt_fns["saltops_beaconstate.load"]("never") == {}
    assert (tmp_path / "saltops-beacons" / "mon_cpu.json").stat().st_mode & 0o077 == 0
    with pytest.raises(ValueError):
        salt_fns["saltops_beaconstate.save"]("../etc/passwd", {})


def test_cpu_speaks_above_and_once_back_below_across_reloads(salt_fns, monkeypatch):
    readings = iter([0.0, 95.0, 97.0, 20.0, 10.0])
    cfg = [{"percent": 90}, {"_beacon_name": "mon_cpu"}]
    first = beacon("saltops_cpu", salt_fns)
    monkeypatch.setattr(first, "psutil", types.SimpleNamespace(cpu_percent=lambda interval=None: next(readings)))
    assert first.validate(cfg)[0] and not first.validate([{"percent": 150}])[0]
    assert first.beacon(cfg) == []  # psutil's first 0.0 is not a measurement
    assert first.beacon(cfg) == [{"cpu_percent": 95.0, "threshold": 90.0, "above": True}]
    again = beacon("saltops_cpu", salt_fns)  # a pillar refresh reloads the beacon
    monkeypatch.setattr(again, "psutil", first.psutil)
    assert again.beacon(cfg) == [{"cpu_percent": 97.0, "threshold": 90.0, "above": True}]
    assert again.beacon(cfg) == [{"cpu_percent": 20.0, "threshold": 90.0, "above": False}]
    assert again.beacon(cfg) == []


Counters = collections.namedtuple("Counters", "bytes_recv bytes_sent")


def fake(monkeypatch, mod, clock, samples):
    """The module's clock and counters only: the real time and psutil modules stay untouched."""
    monkeypatch.setattr(mod, "time", types.SimpleNamespace(time=lambda: next(clock)))
    monkeypatch.setattr(mod, "psutil", types.SimpleNamespace(net_io_counters=lambda pernic=True: next(samples)))


def test_bandwidth_rate_between_two_samples_per_interface(salt_fns, monkeypatch):
    mod = beacon("saltops_bandwidth", salt_fns)
    cfg = [{"max_mbps": 8}, {"interfaces": {"eth1": 100}}, {"_beacon_name": "mon_bw"}]
    assert mod.validate(cfg)[0] and not mod.validate([{"interval": 5}])[0]
    clock = iter([1000.0, 1010.0, 1020.0, 1030.0])
    samples = iter([
        {"lo": Counters(0, 0), "eth0": Counters(0, 0), "eth1": Counters(0, 0)},
        # 10 s later: eth0 received 20 MB (16 Mbit/s), eth1 the same (under its own 100), lo ignored.
        {"lo": Counters(10**9, 10**9), "eth0": Counters(20 * 10**6, 0), "eth1": Counters(20 * 10**6, 0)},
        {"lo": Counters(10**9, 10**9), "eth0": Counters(21 * 10**6, 0), "eth1": Counters(20 * 10**6, 0)},
        # The counters went backwards (the interface was reset): no rate, no event.
        {"lo": Counters(0, 0), "eth0": Counters(5, 0), "eth1": Counters(0, 0)},
    ])
    fake(monkeypatch, mod, clock, samples)
    assert mod.beacon(cfg) == []  # the first sample only
    assert mod.beacon(cfg) == [{"tag": "eth0", "interface": "eth0", "rx_mbps": 16.0, "tx_mbps": 0.0, "mbps": 16.0,
                                "threshold": 8.0, "above": True}]
    mod = beacon("saltops_bandwidth", salt_fns)  # reloaded: the sample and "above" were kept
    fake(monkeypatch, mod, clock, samples)
    assert mod.beacon(cfg) == [{"tag": "eth0", "interface": "eth0", "rx_mbps": 0.8, "tx_mbps": 0.0, "mbps": 0.8,
                                "threshold": 8.0, "above": False}]
    assert mod.beacon(cfg) == []


STATUS = """saltops-app-shop                 FATAL     Exited too quickly (process log may have details)
saltops-app-api                  RUNNING   pid 4242, uptime 1 day, 2:03:04
worker:worker_00                 STOPPED   Dec 02 06:00 AM
"""


def test_supervisor_reads_supervisorctl_exit_3_and_reports_recovery(salt_fns):
    runs = iter([{"retcode": 3, "stdout": STATUS, "stderr": ""},
                 {"retcode": 0, "stdout": STATUS.replace("FATAL    ", "RUNNING  "), "stderr": ""},
                 {"retcode": 7, "stdout": "", "stderr": "unix:///run/supervisor.sock no such file"}])
    calls = []

    def run_all(cmd, **kwargs):
        calls.append(cmd)
        return next(runs)

    mod = beacon("saltops_supervisor", {**salt_fns, "cmd.run_all": run_all})
    assert mod.parse_status(STATUS) == {
        "saltops-app-shop": ("FATAL", "Exited too quickly (process log may have details)"),
        "saltops-app-api": ("RUNNING", "pid 4242, uptime 1 day, 2:03:04"),
        "worker:worker_00": ("STOPPED", "Dec 02 06:00 AM"),
    }
    cfg = [{"programs": ["saltops-app-shop", "saltops-app-api"]}, {"conf_file": "/etc/sup.conf"},
           {"_beacon_name": "mon_sup"}]
    assert [(e["program"], e["state"], e["running"]) for e in mod.beacon(cfg)] == [
        ("saltops-app-shop", "FATAL", False)]
    assert calls[0] == ["supervisorctl", "-c", "/etc/sup.conf", "status"]
    assert [(e["program"], e["running"]) for e in mod.beacon(cfg)] == [("saltops-app-shop", True)]
    # supervisord unreachable: every watched program is UNKNOWN, with the reason.
    down = mod.beacon(cfg)
    assert {(e["program"], e["state"]) for e in down} == {("saltops-app-shop", "UNKNOWN"),
                                                         ("saltops-app-api", "UNKNOWN")}
    assert "no such file" in down[0]["description"]
    assert not mod.validate([{"programs": "shop"}])[0]


def test_sites_report_status_latency_and_errors(salt_fns, tmp_path):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200 if self.path == "/healthz" else 503)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    with socketless() as closed:
        mod = beacon("saltops_sites", salt_fns)
        cfg = [{"sites": {"shop": {"url": f"http://127.0.0.1:{port}/healthz"},
                          "api": {"url": f"http://127.0.0.1:{port}/broken", "timeout": 2},
                          "gone": {"url": f"http://127.0.0.1:{closed}/", "timeout": 2}}}]
        assert mod.validate(cfg)[0]
        events = {e["site"]: e for e in mod.beacon(cfg)}
    server.shutdown()
    assert events["shop"]["ok"] is True and events["shop"]["status"] == 200 and events["shop"]["latency_ms"] >= 0
    assert events["api"]["ok"] is False and events["api"]["status"] == 503 and events["api"]["error"] == "HTTP 503"
    assert events["gone"]["ok"] is False and events["gone"]["status"] == 0 and events["gone"]["error"]
    assert {e["tag"] for e in events.values()} == {"shop", "api", "gone"}
    for bad in ([{"sites": {}}], [{"sites": {"x": {"url": "ftp://x"}}}], [{"sites": {"x": {"url": "http://x",
                                                                                          "timeout": 0}}}]):
        assert not mod.validate(bad)[0]


class socketless:
    """A port on which nothing listens (bound, then closed)."""

    def __enter__(self):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def __exit__(self, *exc):
        return False
