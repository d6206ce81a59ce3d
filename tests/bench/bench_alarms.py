"""Benchmark: master-bus events -> alarm notifications, against the plain reactor -> runner path.

One command, one master, two phases at the same event rate:

* baseline: each event goes through Salt's reactor to a runner that only writes
  one line per call (``alarms_baseline/bench_sink.py``);
* engine: each event is a diskusage beacon event of a distinct host, taken by
  the ``saltops_alarms`` engine, evaluated, grouped and delivered as an
  Alertmanager webhook to a local receiver.

Printed: events fired, events that arrived (zero loss?), events/s sustained
(engine: events accepted / time from the first event fired to the engine's
counter reaching them all; baseline: runner calls / time to the last call),
and p50/p99 latency from firing the event to the runner call (baseline) or to
the notification that announces the alarm (engine), and the ratios.

    .venv/bin/python tests/bench/bench_alarms.py [--rate 1000] [--seconds 10] [--db sqlite|mysql]
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.alarm_receivers import Receivers, free_port

HERE = Path(__file__).resolve().parent


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def master_config(tmp, receivers, db_url, port):
    rules = {
        "rules": [{"name": "DiskFull", "beacon": "diskusage", "field": "diskusage", "threshold": 90,
                   "key": ["mount"]}],
        "route": {"receiver": "ops", "group_by": ["alertname"], "group_wait": "0.2s", "group_interval": "0.5s",
                  "repeat_interval": "1h"},
        # New alarms are listed first; 2,000 a message covers a 0.5 s interval at 1,000 ev/s.
        "receivers": {"ops": {"channels": ["hook"], "max_alerts": 2000}},
    }
    (tmp / "rules.yml").write_text(yaml.safe_dump(rules))
    return {
        "id": "bench-master",
        "root_dir": str(tmp),
        "pki_dir": str(tmp / "pki"),
        "cachedir": str(tmp / "cache"),
        "sock_dir": str(tmp / "sock"),
        "pidfile": str(tmp / "master.pid"),
        "log_file": str(tmp / "master.log"),
        "log_level_logfile": "warning",
        "interface": "127.0.0.1",
        "publish_port": free_port(),
        "ret_port": free_port(),
        "user": os.environ.get("USER") or "root",
        "worker_threads": 2,
        "runner_dirs": [str(HERE / "alarms_baseline")],
        "reactor": [{"bench/baseline/*": [str(HERE / "alarms_baseline" / "baseline.sls")]}],
        "bench_sink_file": str(tmp / "sink.txt"),
        "engines": [{"saltops_alarms": {}}],
        "saltops": {
            "db_url": db_url,
            "alarms": {"rules_file": str(tmp / "rules.yml"), "listen_port": port, "tick": 0.1,
                       # The benchmark's hosts are not minions with keys; the check is tested elsewhere.
                       "require_accepted_key": False, "cmdb_labels": True, "fire_events": True},
            "notify": {"channels": {"hook": {"type": "webhook", "url": f"{receivers.base}/hook"}}},
        },
    }


def fire_paced(bus, events, rate):
    start = time.time()
    for i, (tag, data) in enumerate(events):
        due = start + i / rate
        now = time.time()
        if due > now:
            time.sleep(due - now)
        data["t0"] = time.time()
        bus.fire_event(data, tag)
    return time.time() - start


def wait_until(cond, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second fired (both phases)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the engine phase")
    parser.add_argument("--baseline-seconds", type=float, default=5.0, help="length of the baseline phase")
    parser.add_argument("--db", choices=("sqlite", "mysql"), default="sqlite")
    args = parser.parse_args()

    import salt.utils.event

    tmp = Path(tempfile.mkdtemp(prefix="sob-", dir="/tmp"))
    receivers = Receivers().start()
    database = None
    if args.db == "mysql":
        from tests.support import mysql

        database = mysql.create_database("saltops_bench")
        db_url = database.url
    else:
        db_url = f"sqlite:///{tmp / 'saltops.db'}"
    port = free_port()
    conf = master_config(tmp, receivers, db_url, port)
    (tmp / "master").write_text(yaml.safe_dump(conf))
    master = subprocess.Popen([str(Path(sys.executable).with_name("salt-master")), "-c", str(tmp), "-l", "quiet"],
                              start_new_session=True)
    try:
        if not wait_until(lambda: _healthy(port), 90):
            raise SystemExit(f"the engine did not come up; see {tmp / 'master.log'}")
        opts = {"sock_dir": conf["sock_dir"], "transport": "zeromq", "id": "bench", "__role": "master",
                "ipc_mode": "ipc", "hash_type": "sha256"}
        import salt.config

        opts = salt.config.master_config(str(tmp / "master"))
        bus = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False)

        # -- baseline: reactor -> runner ------------------------------------------------------
        n_base = int(args.rate * args.baseline_seconds)
        base_events = [(f"bench/baseline/{i}", {"seq": i}) for i in range(n_base)]
        took = fire_paced(bus, base_events, args.rate)
        sink = tmp / "sink.txt"
        last = [-1, time.time()]

        def settled():
            count = sum(1 for _ in open(sink)) if sink.exists() else 0
            if count != last[0]:
                last[0], last[1] = count, time.time()
            return time.time() - last[1] > 10 or count >= n_base

        wait_until(settled, 600)
        rows = [line.split() for line in open(sink)] if sink.exists() else []
        base_lat = [float(r[2]) - float(r[1]) for r in rows]
        base_span = (max(float(r[2]) for r in rows) - min(float(r[1]) for r in rows)) if rows else float("nan")
        baseline = {"fired": n_base, "fire_seconds": took, "arrived": len(rows),
                    "lost": n_base - len(rows), "rate": len(rows) / base_span if rows else 0.0,
                    "p50": pct(base_lat, 50), "p99": pct(base_lat, 99)}

        # -- engine ----------------------------------------------------------------------------
        n = int(args.rate * args.seconds)
        accepted_before = metric(port, "saltops_alarm_events_accepted_total")
        events = [(f"salt/beacon/bh{i:06d}/diskusage/", {"id": f"bh{i:06d}", "diskusage": 95.0, "mount": "/"})
                  for i in range(n)]
        fired_at = {}
        ingested = {}

        def watch():
            # When did the engine's accepted counter reach n? (ingestion rate, without the
            # notification tail of the last group interval)
            while "done" not in ingested:
                try:
                    if metric(port, "saltops_alarm_events_accepted_total") - accepted_before >= n:
                        ingested["done"] = time.time()
                        return
                except OSError:
                    pass
                time.sleep(0.2)

        import threading

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        took = fire_paced(bus, events, args.rate)
        for tag, data in events:
            fired_at[data["id"]] = data["t0"]

        def announced():
            seen = {}
            for got in receivers.of("hook"):
                for alert in got["body"]["alerts"]:
                    seen.setdefault(alert["labels"]["host"], got["at"])
            return seen

        wait_until(lambda: len(announced()) >= n, 120)
        watcher.join(30)
        ingested.setdefault("done", float("nan"))
        seen = announced()
        accepted = metric(port, "saltops_alarm_events_accepted_total") - accepted_before
        lat = [seen[h] - fired_at[h] for h in fired_at if h in seen]
        span = ingested["done"] - min(fired_at.values())
        # Alarms past a message's max_alerts are counted in truncatedAlerts, not listed.
        truncated = sum(g["body"]["truncatedAlerts"] for g in receivers.of("hook"))
        engine = {"fired": n, "fire_seconds": took, "arrived": len(seen), "accepted": int(accepted),
                  "truncated": truncated, "lost": n - int(accepted), "rate": int(accepted) / span if accepted else 0.0,
                  "p50": pct(lat, 50), "p99": pct(lat, 99), "notifications": len(receivers.of("hook"))}
        bus.destroy()
    finally:
        os.killpg(master.pid, signal.SIGTERM)
        try:
            master.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(master.pid, signal.SIGKILL)
            master.wait(10)
        receivers.stop()
        if database is not None:
            database.drop()
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"alarm ingestion benchmark: {args.rate:.0f} events/s offered, database {args.db}")
    print(f"{'path':<22}{'fired':>8}{'arrived':>9}{'lost':>7}{'ev/s':>9}{'p50 s':>9}{'p99 s':>9}")
    for name, r in (("reactor -> runner", baseline), ("saltops_alarms engine", engine)):
        print(f"{name:<22}{r['fired']:>8}{r['arrived']:>9}{r['lost']:>7}{r['rate']:>9.1f}{r['p50']:>9.3f}"
              f"{r['p99']:>9.3f}")
    print(f"engine: {engine['accepted']} events accepted, {engine['arrived']} alarms listed in "
          f"{engine['notifications']} grouped notifications (+{engine['truncated']} counted as truncated); "
          f"fired in {engine['fire_seconds']:.1f} s (baseline {baseline['fire_seconds']:.1f} s)")
    if baseline["rate"]:
        print(f"ratio engine/baseline: throughput x{engine['rate'] / baseline['rate']:.1f}, "
              f"p99 latency x{engine['p99'] / baseline['p99']:.3f}")
    # Ingestion keeps up when it ends within a polling step of the last event fired.
    ok = engine["lost"] == 0 and engine["arrived"] == n and engine["p99"] < 2.0 and engine["rate"] >= min(1000.0, args.rate) * 0.97
    print("target (>=1000 ev/s, zero loss, p99 < 2 s):", "met" if ok else "NOT met")
    return 0 if ok else 1


def _healthy(port):
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=2).status == 200
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
