"""Benchmark: master-bus events -> alarm notifications, against the plain reactor -> runner path.

One command measures, in one run:

* the baseline: each event goes through Salt's reactor to a runner that only
  writes one line per call (``alarms_baseline/bench_sink.py``);
* the ``saltops_alarms`` engine on each database asked for (SQLite and
  MariaDB by default): each event is a diskusage beacon event of a distinct
  host, taken by the engine, evaluated, grouped and delivered as an
  Alertmanager webhook to a local receiver.

Every phase runs against a real salt-master started for it, with the engine
and the reactor both configured (so each reads every event, as on a real
master).  Events are fired on the master bus with Salt's own asynchronous
``fire_event`` from ``--firers`` processes, each at its share of ``--rate``.

Printed per phase: events fired, events that arrived (zero loss?), events/s
sustained (engine: events accepted / time from the first event fired to the
engine's counter reaching them all; baseline: runner calls / time to the last
call), p50/p99 latency from firing an event to the runner call (baseline) or
to the notification that announces its alarm (engine); then the medians over
``--runs``, the ratios against the baseline, the load average of the machine
(it is shared), and whether the target is met (>= 1,000 events/s, zero loss,
p99 < 2 s).  The exit code is 0 when every database meets it.

    .venv/bin/python tests/bench/bench_alarms.py [--rate 1000] [--seconds 10] [--db sqlite,mysql]
                                                 [--runs 3] [--firers N] [--json results.json]
"""

import argparse
import json
import math
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.alarm_receivers import Receivers, free_port

HERE = Path(__file__).resolve().parent
# Master processes whose CPU the engine phases report (by process title).
CPU_OF = {"engine": "Engine(salt.loaded.ext.engines.saltops_alarms)", "reactor": "engines.reactor"}
TARGET_RATE = 1000.0
TARGET_P99 = 2.0


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def master_config(tmp, receivers, db_url, port, rate, bus_queue=0):
    rules = {
        "rules": [{"name": "DiskFull", "beacon": "diskusage", "field": "diskusage", "threshold": 90,
                   "key": ["mount"]}],
        "route": {"receiver": "ops", "group_by": ["alertname"], "group_wait": "0.2s", "group_interval": "0.5s",
                  "repeat_interval": "1h"},
        # New alarms are listed first; a message lists what one group_interval brings, with room to spare,
        # so that every alarm is named in the message that announces it (latency is measured on that).
        "receivers": {"ops": {"channels": ["hook"], "max_alerts": max(2000, int(rate * 2))}},
    }
    (tmp / "rules.yml").write_text(yaml.safe_dump(rules))
    extra = {"pub_server_write_queue_size": bus_queue} if bus_queue else {}
    return {
        **extra,
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


# -- load generation --------------------------------------------------------------------------
def _firer(conf_path, first, step, total, rate, start_at, kind, results):
    """Fire events first, first+step, ... < total at their due time start_at + index / rate.

    Salt's asynchronous ``fire_event`` with ``master_async_mworker`` set in this process's own
    opts (the path the master's workers take with that setting) costs ~0.05 ms of CPU per
    event; the synchronous one ~0.5 ms, which at 2,000 events/s would be half this machine.
    The master under test keeps its own settings.
    """
    import asyncio

    import salt.config
    import salt.utils.event

    opts = salt.config.master_config(conf_path)
    opts["master_async_mworker"] = True

    async def run():
        bus = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False,
                                                io_loop=asyncio.get_running_loop())
        bus.fire_event({"warmup": True}, "bench/warmup")  # connect before the clock starts
        await asyncio.sleep(max(0.0, start_at - time.time() - 0.5))
        sent, failed, late = {}, 0, 0.0
        for i in range(first, total, step):
            due = start_at + i / rate
            now = time.time()
            if due > now:
                await asyncio.sleep(due - now)
            else:
                late = max(late, now - due)
                await asyncio.sleep(0)  # let the publish tasks run
            if kind == "baseline":
                tag, data = f"bench/baseline/{i}", {"seq": i}
            else:
                tag, data = f"salt/beacon/bh{i:06d}/diskusage/", {"id": f"bh{i:06d}", "diskusage": 95.0, "mount": "/"}
            data["t0"] = time.time()
            if bus.fire_event(data, tag):
                sent[i] = data["t0"]
            else:
                failed += 1
        await asyncio.sleep(0.5)  # the last publish tasks
        bus.destroy()
        return {"sent": sent, "failed": failed, "late": late, "ended": time.time()}

    results.put(asyncio.run(run()))


def fire(conf_path, kind, total, rate, firers):
    """Fire ``total`` events at ``rate`` from ``firers`` processes; {index: fire time}, seconds taken."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    start_at = time.time() + 3.0  # the processes import Salt and connect first
    procs = [ctx.Process(target=_firer, args=(conf_path, k, firers, total, rate, start_at, kind, results))
             for k in range(firers)]
    for proc in procs:
        proc.start()
    sent, failed, late, ended = {}, 0, 0.0, start_at
    for _ in procs:
        got = results.get(timeout=total / rate + 120)
        sent.update(got["sent"])
        failed += got["failed"]
        late = max(late, got["late"])
        ended = max(ended, got["ended"])
    for proc in procs:
        proc.join(10)
    return sent, {"failed": failed, "seconds": ended - start_at, "max_late": late}


# -- helpers -----------------------------------------------------------------------------------
def wait_until(cond, timeout, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def _healthy(port):
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=2).status == 200
    except OSError:
        return False


def load_average():
    return os.getloadavg()[0]


def process_cpu(marker, root):
    """CPU seconds used so far by the master's processes whose title holds ``marker``."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
            if marker not in cmdline or root not in cmdline:
                continue
            with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return total


class Master:
    """A salt-master with the engine and the reactor, on a database of its own."""

    def __init__(self, db, rate, bus_queue=0):
        self.tmp = Path(tempfile.mkdtemp(prefix="sob-", dir="/tmp"))
        self.receivers = Receivers().start()
        self.database = None
        if db == "mysql":
            from tests.support import mysql

            self.database = mysql.create_database("saltops_bench")
            db_url = self.database.url
        else:
            db_url = f"sqlite:///{self.tmp / 'saltops.db'}"
        self.port = free_port()
        self.conf = master_config(self.tmp, self.receivers, db_url, self.port, rate, bus_queue)
        self.conf_path = str(self.tmp / "master")
        Path(self.conf_path).write_text(yaml.safe_dump(self.conf))
        with open(self.tmp / "master.out", "wb") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("salt-master")), "-c", str(self.tmp), "-l", "quiet"],
                start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
        if not wait_until(lambda: _healthy(self.port), 90, step=0.5):
            self.stop()
            raise SystemExit(f"the engine did not come up on {db}; see {self.tmp / 'master.log'}")

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass
        self.receivers.stop()
        if self.database is not None:
            self.database.drop()
        shutil.rmtree(self.tmp, ignore_errors=True)


# -- phases ------------------------------------------------------------------------------------
def run_baseline(master, rate, seconds, firers):
    n = int(rate * seconds)
    load = load_average()
    sent, info = fire(master.conf_path, "baseline", n, rate, firers)
    sink = master.tmp / "sink.txt"
    last = [-1, time.time()]

    def lines():
        if not sink.exists():
            return []
        with open(sink, encoding="utf-8") as fh:
            return [line.split() for line in fh]

    def settled():
        count = len(lines())
        if count != last[0]:
            last[0], last[1] = count, time.time()
        return time.time() - last[1] > 10 or count >= len(sent)

    wait_until(settled, 900, step=0.5)
    rows = lines()
    lat = [float(r[2]) - float(r[1]) for r in rows]
    span = (max(float(r[2]) for r in rows) - min(sent.values())) if rows else float("nan")
    return {"path": "reactor -> runner", "fired": len(sent), "arrived": len(rows), "lost": len(sent) - len(rows),
            "rate": len(rows) / span if rows else 0.0, "p50": pct(lat, 50), "p99": pct(lat, 99),
            "fire_seconds": info["seconds"], "load": load, "notifications": len(rows)}


def run_engine(master, db, rate, seconds, firers):
    n = int(rate * seconds)
    port = master.port
    accepted_before = metric(port, "saltops_alarm_events_accepted_total")
    ingested = {}
    stop_watch = threading.Event()

    def watch():
        # When did the engine's accepted counter reach n?  (the ingestion rate, without the
        # notification tail of the last group interval)
        while not stop_watch.is_set():
            try:
                if metric(port, "saltops_alarm_events_accepted_total") - accepted_before >= n:
                    ingested["done"] = time.time()
                    return
            except OSError:
                pass
            time.sleep(0.2)

    load = load_average()
    root = str(master.tmp)
    cpu_before = {name: process_cpu(marker, root) for name, marker in CPU_OF.items()}
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    sent, info = fire(master.conf_path, "engine", n, rate, firers)
    seen = {}
    counted = [0]

    def announced():
        hooks = master.receivers.of("hook")
        for got in hooks[counted[0]:]:
            for alert in got["body"]["alerts"]:
                seen.setdefault(alert["labels"]["host"], got["at"])
        counted[0] = len(hooks)
        return len(seen) >= len(sent)

    wait_until(announced, 120, step=0.2)
    watcher.join(30)
    stop_watch.set()
    cpu = {name: process_cpu(marker, root) - cpu_before[name] for name, marker in CPU_OF.items()}
    accepted = int(metric(port, "saltops_alarm_events_accepted_total") - accepted_before)
    reconnects = int(metric(port, "saltops_alarm_bus_reconnects_total"))
    writes = metric(port, "saltops_alarm_write_seconds_count")
    write_mean = metric(port, "saltops_alarm_write_seconds_sum") / writes if writes else float("nan")
    merged = int(metric(port, "saltops_alarm_writes_merged_total"))
    first = min(sent.values()) if sent else float("nan")
    span = ingested.get("done", float("nan")) - first
    lat = [seen[f"bh{i:06d}"] - t0 for i, t0 in sent.items() if f"bh{i:06d}" in seen]
    hooks = master.receivers.of("hook")
    return {"path": f"engine ({db})", "db": db, "fired": len(sent), "arrived": len(seen), "accepted": accepted,
            "lost": n - accepted, "rate": accepted / span if accepted and not math.isnan(span) else 0.0,
            "p50": pct(lat, 50), "p99": pct(lat, 99), "notifications": len(hooks),
            "truncated": sum(g["body"]["truncatedAlerts"] for g in hooks), "fire_seconds": info["seconds"],
            "fire_failed": info["failed"], "fire_late": info["max_late"], "reconnects": reconnects, "load": load, "write_mean": write_mean, "writes_merged": merged,
            "engine_cpu_ms_per_event": cpu["engine"] * 1000 / max(accepted, 1),
            "reactor_cpu_ms_per_event": cpu["reactor"] * 1000 / max(accepted, 1)}


# -- report ------------------------------------------------------------------------------------
COLUMNS = f"{'path':<24}{'fired':>8}{'arrived':>9}{'lost':>7}{'ev/s':>9}{'p50 s':>9}{'p99 s':>9}{'msgs':>6}{'load':>6}"


def row(r):
    return (f"{r['path']:<24}{r['fired']:>8}{r['arrived']:>9}{r['lost']:>7}{r['rate']:>9.1f}{r['p50']:>9.3f}"
            f"{r['p99']:>9.3f}{r['notifications']:>6}{r['load']:>6.1f}")


def median_of(results):
    out = dict(results[0])
    for key in ("fired", "arrived", "lost", "rate", "p50", "p99", "notifications", "load",
                "engine_cpu_ms_per_event", "reactor_cpu_ms_per_event"):
        out[key] = statistics.median(r[key] for r in results)
    out["fired"], out["arrived"], out["lost"], out["notifications"] = (
        int(out["fired"]), int(out["arrived"]), int(out["lost"]), int(out["notifications"]))
    return out


def meets(r, rate):
    # Ingestion keeps up when it ends within a polling step of the last event fired.
    return (r["lost"] == 0 and r["arrived"] == r["fired"] and r["p99"] < TARGET_P99
            and r["rate"] >= min(TARGET_RATE, rate) * 0.97)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second fired (every phase)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each engine phase")
    parser.add_argument("--baseline-seconds", type=float, default=5.0,
                        help="length of the baseline phase (0: no baseline)")
    parser.add_argument("--db", default="sqlite,mysql", help="databases for the engine: sqlite, mysql or both")
    parser.add_argument("--runs", type=int, default=1, help="engine phases per database; medians are reported")
    parser.add_argument("--firers", type=int, default=0,
                        help="processes firing events (default: one per 1,000 events/s)")
    parser.add_argument("--bus-queue", type=int, default=0,
                        help="the master's pub_server_write_queue_size (default: Salt's own, 10,000)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    if not dbs or any(d not in ("sqlite", "mysql") for d in dbs):
        parser.error("--db takes sqlite, mysql or sqlite,mysql")
    firers = args.firers or max(1, math.ceil(args.rate / 1000))
    if "mysql" in dbs:
        from tests.support import mysql

        problem = mysql.server_problem()
        if problem:
            parser.error(f"{problem}; or pass --db sqlite")

    print(f"alarm ingestion benchmark: {args.rate:.0f} events/s offered by {firers} firing process(es), "
          f"{args.seconds:.0f} s per engine phase, {args.runs} run(s) on {', '.join(dbs)}, "
          f"pub_server_write_queue_size {args.bus_queue or 'default'}; "
          f"{os.cpu_count()} CPUs, load average {load_average():.1f} at start", flush=True)
    print(COLUMNS, flush=True)
    baseline = None
    engines = {db: [] for db in dbs}
    for run in range(args.runs):
        for db in dbs:
            master = Master(db, args.rate, args.bus_queue)
            try:
                if baseline is None and args.baseline_seconds > 0:
                    baseline = run_baseline(master, args.rate, args.baseline_seconds, firers)
                    print(row(baseline), flush=True)
                result = run_engine(master, db, args.rate, args.seconds, firers)
            finally:
                master.stop()
            engines[db].append(result)
            print(row(result) + f"   run {run + 1}: +{result['truncated']} truncated, {result['reconnects']} bus "
                  f"reconnects, firing took {result['fire_seconds']:.1f} s, CPU per event: engine "
                  f"{result['engine_cpu_ms_per_event']:.3f} ms, reactor {result['reactor_cpu_ms_per_event']:.3f} ms; "
                  f"write-behind {result['write_mean'] * 1000:.0f} ms a transaction, {result['writes_merged']} merged",
                  flush=True)

    print(f"\nmedians over {args.runs} run(s); load average {load_average():.1f} at the end", flush=True)
    print(COLUMNS)
    if baseline is not None:
        print(row(baseline))
    summary = {"rate": args.rate, "seconds": args.seconds, "firers": firers, "runs": args.runs,
               "baseline": baseline, "engines": {}}
    ok = True
    for db in dbs:
        med = median_of(engines[db])
        summary["engines"][db] = {"median": med, "runs": engines[db]}
        print(row(med))
    for db in dbs:
        med = summary["engines"][db]["median"]
        if baseline is not None and baseline["rate"]:
            print(f"ratio engine ({db}) / baseline: throughput x{med['rate'] / baseline['rate']:.1f}, "
                  f"p99 latency x{med['p99'] / baseline['p99']:.3f}")
        print(f"engine ({db}) CPU per event: {med['engine_cpu_ms_per_event']:.3f} ms (one core would take "
              f"{1000 / med['engine_cpu_ms_per_event']:.0f} events/s); the reactor reading the same events: "
              f"{med['reactor_cpu_ms_per_event']:.3f} ms")
        good = meets(med, args.rate)
        ok = ok and good
        print(f"target on {db} (>= {TARGET_RATE:.0f} ev/s, zero loss, p99 < {TARGET_P99:.0f} s):",
              "met" if good else "NOT met")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
