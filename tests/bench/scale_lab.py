"""The scale lab: one master, a CMDB on MariaDB, and 20, 50, 100... real minions on this machine.

One command starts everything, measures, prints, and stops what it started:

    .venv/bin/python tests/bench/scale_lab.py --minions 20,50,100 [--json out.json]

What runs: a private MariaDB server (so that its query counters are the
master's alone), one salt-master with the SaltOps external pillar and alarm
engine and the settings of ``salt/master.d/large-master.conf`` (``worker_threads``
scaled down to this machine, ``--worker-threads``), and one ``salt-minion``
process per minion (``multiprocessing: False``: jobs run in a thread of the
minion, not a forked process), each with its own config and cache directory.
The CMDB holds one host per minion, so every minion's pillar is a real CMDB
record.  Minions are added step by step (20, then 30 more, ...), and at each
step the lab measures:

* ``ready``: seconds until the new minions answered ``test.ping``;
* ``ping``: ``test.ping`` of every minion, round trip (median of ``--repeat``);
* ``pillar``: ``saltutil.refresh_pillar wait=True`` on every minion (each one
  asks the master for a fresh render of its CMDB pillar), with the database
  queries it caused;
* ``state`` / ``state_batch``: ``state.apply scalelab`` (a file rendered from
  the CMDB pillar) on every minion at once, then through ``salt --batch-size``;
* ``storm``: every minion's ``load`` beacon fires each second for ``--storm``
  seconds; events/s seen on the master bus and accepted by the alarm engine
  (its ``/metrics``), and the master's CPU meanwhile;
* the master's memory (RSS and PSS of its process tree), the minions' PSS, the
  master's idle CPU with every minion connected, and its CPU seconds per phase.

Printed: one table, one column per size, then how each figure grows from the
first size to the others (ratio of values, and of minions).  Timings on this
shared 2-core machine vary: compare ratios rather than single figures.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import yaml
from salt.exceptions import SaltClientError

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench.bench_alarms import metric, wait_until  # noqa: E402
from tests.support.alarm_receivers import Receivers, free_port  # noqa: E402
from tests.support.mariadb_instance import MariaDBInstance  # noqa: E402
from tests.support.pillar_hosts import host, write  # noqa: E402

BIN = Path(sys.executable).parent
LARGE_MASTER = REPO / "salt" / "master.d" / "large-master.conf"
IDCS = ("bj-idc1", "bj-idc2", "sh-idc1", "gz-idc1")
STATE = """\
{% set cmdb = salt['pillar.get']('cmdb', {}) %}
scalelab-record:
  file.managed:
    - name: {{ opts['cachedir'] }}/scalelab.txt
    - contents: "{{ cmdb.get('hostname') }} {{ cmdb.get('ip') }} {{ cmdb.get('idc') }} v{{ cmdb.get('version') }}"
"""
# Beacons come from pillar, as SaltOps sets them (pillar/stack): the storm is on while the flag file exists.
STORM_PILLAR = """\
{% if salt['file.file_exists'](opts['root_dir'] ~ '/storm.flag') %}
beacons:
  load:
    - averages: {"1m": [-1.0, 0.0], "5m": [-1.0, 1000.0], "15m": [-1.0, 1000.0]}
    - onchangeonly: false
    - interval: 1
{% endif %}
"""
RULES = {
    "rules": [{"name": "LoadSeen", "beacon": "load", "field": "1m", "op": ">=", "threshold": 0, "for": "0s"}],
    "route": {"receiver": "ops", "group_by": ["alertname"], "group_wait": "1s", "group_interval": "5s",
              "repeat_interval": "4h"},
    "receivers": {"ops": {"channels": ["hook"], "max_alerts": 5000}},
}


def minion_name(index):
    return f"m{index:03d}.scale.test"


def daemon_dirs(root, kind):
    """Where one daemon keeps everything: under ``root``, logging warnings only, as this user."""
    root = Path(root)
    return {
        "root_dir": str(root),
        "pki_dir": str(root / "pki"),
        "cachedir": str(root / "cache"),
        "sock_dir": str(root / "sock"),
        "pidfile": str(root / f"{kind}.pid"),
        "log_file": str(root / f"{kind}.log"),
        "log_level_logfile": "warning",
        "user": psutil.Process().username(),
    }


# -- the master and its minions ------------------------------------------------------------------
class Lab:
    def __init__(self, worker_threads):
        self.tmp = Path(tempfile.mkdtemp(prefix="scl-", dir="/tmp"))
        self.db = MariaDBInstance(base_dir=str(self.tmp / "db"), buffer_pool="128M")
        os.makedirs(self.db.base_dir)
        self.receivers = Receivers().start()
        self.metrics_port = free_port()
        self.ports = {"publish": free_port(), "ret": free_port()}
        self.worker_threads = worker_threads
        self.master = None
        self.minions = {}
        self.store = None

    # database
    def start_db(self, hosts):
        from saltops.store.engine import Store

        self.db.start()
        url = self.db.url("saltops")
        self.store = Store(url)
        self.store.migrate()
        records = [host(minion_name(i), ip=f"10.{i // 250}.{i % 250}.10", idc=IDCS[i % len(IDCS)])
                   for i in range(hosts)]
        write(self.store, *records)
        return url

    def queries(self):
        """Statements the database server has run so far (``Questions``), minus our own."""
        conn = self.db.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE 'Questions'")
                return int(cur.fetchone()[1]) - 1
        finally:
            conn.close()

    # master
    def master_config(self, db_url):
        conf = yaml.safe_load(LARGE_MASTER.read_text())
        conf["worker_threads"] = self.worker_threads
        (self.tmp / "states").mkdir()
        (self.tmp / "states" / "scalelab.sls").write_text(STATE)
        (self.tmp / "rules.yml").write_text(yaml.safe_dump(RULES))
        (self.tmp / "pillar").mkdir()
        (self.tmp / "pillar" / "top.sls").write_text("base:\n  '*':\n    - storm\n")
        (self.tmp / "pillar" / "storm.sls").write_text(STORM_PILLAR)
        conf.update({
            **daemon_dirs(self.tmp, "master"),
            "id": "scale-master",
            "interface": "127.0.0.1",
            "publish_port": self.ports["publish"],
            "ret_port": self.ports["ret"],
            "auto_accept": True,
            "file_roots": {"base": [str(self.tmp / "states")]},
            "pillar_roots": {"base": [str(self.tmp / "pillar")]},
            "ext_pillar": [{"saltops_cmdb": {}}],
            "engines": [{"saltops_alarms": {}}],
            "saltops": {
                "db_url": db_url,
                "alarms": {"rules_file": str(self.tmp / "rules.yml"), "listen_port": self.metrics_port},
                "notify": {"channels": {"hook": {"type": "webhook", "url": f"{self.receivers.base}/hook"}}},
            },
        })
        (self.tmp / "master").write_text(yaml.safe_dump(conf))
        return conf

    def start_master(self, db_url):
        self.master_config(db_url)
        with open(self.tmp / "master.out", "wb") as out:
            self.master = subprocess.Popen(  # pylint: disable=consider-using-with
                [str(BIN / "salt-master"), "-c", str(self.tmp), "-l", "quiet"],
                start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
        if not wait_until(self._engine_up, 120, step=0.5):
            raise SystemExit(f"the master did not come up; see {self.tmp / 'master.log'}")

    def _engine_up(self):
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/-/healthy"
            return urllib.request.urlopen(url, timeout=2).status == 200
        except OSError:
            return False

    def client(self):
        import salt.client

        return salt.client.LocalClient(mopts=self.opts())

    def opts(self):
        import salt.config

        if not hasattr(self, "_opts"):
            self._opts = salt.config.master_config(str(self.tmp / "master"))
        return self._opts

    # minions
    def start_minion(self, index):
        name = minion_name(index)
        root = self.tmp / "m" / f"{index:03d}"
        root.mkdir(parents=True)
        conf = {
            **daemon_dirs(root, "minion"),
            "id": name,
            "master": "127.0.0.1",
            "master_port": self.ports["ret"],
            "publish_port": self.ports["publish"],
            "multiprocessing": False,
            "enable_fqdns_grains": False,
            "acceptance_wait_time": 1,
            "random_reauth_delay": 0,
            "loop_interval": 1,
        }
        (root / "minion").write_text(yaml.safe_dump(conf))
        self.minions[name] = subprocess.Popen(  # pylint: disable=consider-using-with
            [str(BIN / "salt-minion"), "-c", str(root), "-l", "quiet"],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_minions(self, names, timeout):
        """Seconds until every minion in ``names`` answered test.ping; raises when some never did."""
        client = self.client()
        start = time.monotonic()
        missing = set(names)
        while missing and time.monotonic() - start < timeout:
            self.check_alive()
            try:
                got = client.cmd(sorted(missing), "test.ping", tgt_type="list", timeout=10)
            except SaltClientError:
                # The master is busy authenticating the new minions: ask again.
                continue
            missing -= {name for name, ok in got.items() if ok is True}
        if missing:
            raise SystemExit(f"{len(missing)} minions never answered, e.g. {sorted(missing)[:5]}")
        return time.monotonic() - start

    # processes
    def check_alive(self):
        """Stop the run with a clear message when the master or a minion is gone (the machine is shared)."""
        if self.master.poll() is not None:
            raise SystemExit(f"the master exited ({self.master.returncode}); see {self.tmp / 'master.log'}")
        dead = [name for name, popen in self.minions.items() if popen.poll() is not None]
        if dead:
            raise SystemExit(f"{len(dead)} minions exited, e.g. {dead[:3]}")

    def master_tree(self):
        proc = psutil.Process(self.master.pid)
        return [proc, *proc.children(recursive=True)]

    def minion_trees(self):
        procs = []
        for popen in self.minions.values():
            try:
                proc = psutil.Process(popen.pid)
                procs += [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return procs

    def stop(self):
        for popen in [*self.minions.values(), self.master]:
            if popen is None:
                continue
            try:
                os.killpg(popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for popen in [*self.minions.values(), self.master]:
            if popen is None:
                continue
            try:
                popen.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(10)
        if self.store is not None:
            self.store.dispose()
        self.receivers.stop()
        self.db.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# -- measuring -----------------------------------------------------------------------------------
def cpu_seconds(procs):
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def memory_mib(procs):
    rss = pss = 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        rss += info.rss
        pss += info.pss
    return rss / 2**20, pss / 2**20


class Phase:
    """Wall time, master CPU seconds and database statements of one measured block."""

    def __init__(self, lab):
        self.lab = lab

    def __enter__(self):
        self.procs = self.lab.master_tree()
        self.cpu0, self.q0, self.t0 = cpu_seconds(self.procs), self.lab.queries(), time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.t0
        self.cpu = cpu_seconds(self.procs) - self.cpu0
        self.queries = self.lab.queries() - self.q0


def all_true(result, names, what):
    bad = [name for name in names if not result.get(name)]
    if bad:
        raise SystemExit(f"{what}: {len(bad)} of {len(names)} minions failed or did not answer, e.g. {bad[:5]}")


def state_ok(result, names):
    bad = []
    for name in names:
        ret = result.get(name)
        if not isinstance(ret, dict) or not all(isinstance(v, dict) and v.get("result") for v in ret.values()):
            bad.append(name)
    if bad:
        raise SystemExit(f"state.apply failed on {len(bad)} minions, e.g. {bad[:3]}: {result.get(bad[0])!r:.500}")


def partial(row):
    """Print the figures so far: a phase that fails later (the machine is shared) does not lose them."""
    print(json.dumps({"partial": row}), flush=True)


def measure(lab, names, args):
    lab.check_alive()
    client = lab.client()
    row = {"minions": len(names)}
    median = statistics.median

    # Idle: every minion connected, nothing asked.
    with Phase(lab) as idle:
        time.sleep(args.idle)
    row["idle_cpu_pct"] = 100 * idle.cpu / idle.seconds
    row["idle_queries_s"] = idle.queries / idle.seconds

    pings, cpus = [], []
    for _ in range(args.repeat):
        with Phase(lab) as ph:
            got = client.cmd(names, "test.ping", tgt_type="list", timeout=60)
        all_true(got, names, "test.ping")
        pings.append(ph.seconds)
        cpus.append(ph.cpu)
    row["ping_s"], row["ping_cpu_s"] = median(pings), median(cpus)
    partial(row)

    refresh, cpus, queries = [], [], []
    for _ in range(args.repeat):
        with Phase(lab) as ph:
            got = client.cmd(names, "saltutil.refresh_pillar", kwarg={"wait": True}, tgt_type="list", timeout=120)
        all_true(got, names, "saltutil.refresh_pillar")
        refresh.append(ph.seconds)
        cpus.append(ph.cpu)
        # Less what the alarm engine and the pillar's version checks run anyway.
        queries.append(ph.queries - row["idle_queries_s"] * ph.seconds)
    row["pillar_s"], row["pillar_cpu_s"], row["pillar_queries"] = median(refresh), median(cpus), median(queries)
    partial(row)

    with Phase(lab) as ph:
        got = client.cmd(names, "state.apply", ["scalelab"], tgt_type="list", timeout=300)
    state_ok(got, names)
    row["state_s"], row["state_cpu_s"] = ph.seconds, ph.cpu
    partial(row)

    with Phase(lab) as ph:
        out = subprocess.run(
            [str(BIN / "salt"), "-c", str(lab.tmp), "-L", ",".join(names), "--batch-size", str(args.batch),
             "--out", "json", "--static", "state.apply", "scalelab"],
            capture_output=True, text=True, timeout=900, check=False)
    try:
        state_ok(json.loads(out.stdout), names)
    except ValueError:
        raise SystemExit(f"salt --batch-size printed no JSON (exit {out.returncode}): {out.stderr[-1000:]}") from None
    row["state_batch_s"], row["state_batch_cpu_s"] = ph.seconds, ph.cpu
    partial(row)

    row.update(storm(lab, client, names, args.storm))

    row["master_rss_mib"], row["master_pss_mib"] = memory_mib(lab.master_tree())
    row["minions_pss_mib"] = memory_mib(lab.minion_trees())[1]
    return row


def storm(lab, client, names, seconds):
    """Every minion's load beacon fires each second; count what the bus and the alarm engine see."""
    import salt.utils.event

    bus = salt.utils.event.get_master_event(lab.opts(), lab.opts()["sock_dir"], listen=True)
    flag = lab.tmp / "storm.flag"
    flag.write_text("on")
    got = client.cmd(names, "saltutil.refresh_pillar", kwarg={"wait": True}, tgt_type="list", timeout=120)
    all_true(got, names, "saltutil.refresh_pillar (storm on)")
    time.sleep(2)  # the first beacon round after the refresh
    while bus.get_event(wait=0.01, full=True):
        pass  # what came before the window
    seen = 0
    accepted0 = metric(lab.metrics_port, "saltops_alarm_events_accepted_total")
    with Phase(lab) as ph:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            event = bus.get_event(wait=0.5, full=True)
            if event and event["tag"].startswith("salt/beacon/") and "/load/" in event["tag"]:
                seen += 1
        accepted = metric(lab.metrics_port, "saltops_alarm_events_accepted_total") - accepted0
    flag.unlink()
    got = client.cmd(names, "saltutil.refresh_pillar", kwarg={"wait": True}, tgt_type="list", timeout=120)
    all_true(got, names, "saltutil.refresh_pillar (storm off)")
    time.sleep(3)  # let the engine take the last events
    bus.destroy()
    return {
        "storm_bus_events_s": seen / ph.seconds,
        "storm_engine_events_s": accepted / ph.seconds,
        "storm_cpu_pct": 100 * ph.cpu / ph.seconds,
        "storm_queries_s": ph.queries / ph.seconds,
    }


# -- printing ------------------------------------------------------------------------------------
LABELS = [
    ("ready_s", "new minions answering test.ping (s)"),
    ("idle_cpu_pct", "master CPU, idle, all connected (% of one core)"),
    ("idle_queries_s", "database statements/s, idle"),
    ("ping_s", "test.ping round trip, all minions (s)"),
    ("ping_cpu_s", "  master CPU for it (s)"),
    ("pillar_s", "refresh_pillar wait=True, all minions (s)"),
    ("pillar_cpu_s", "  master CPU for it (s)"),
    ("pillar_queries", "  database statements for it (less the idle rate)"),
    ("state_s", "state.apply scalelab, all at once (s)"),
    ("state_cpu_s", "  master CPU for it (s)"),
    ("state_batch_s", "salt --batch-size state.apply scalelab (s)"),
    ("state_batch_cpu_s", "  master CPU for it (s)"),
    ("storm_bus_events_s", "beacon storm: events/s on the master bus"),
    ("storm_engine_events_s", "beacon storm: events/s accepted by the alarm engine"),
    ("storm_cpu_pct", "beacon storm: master CPU (% of one core)"),
    ("storm_queries_s", "beacon storm: database statements/s"),
    ("master_rss_mib", "master process tree RSS (MiB)"),
    ("master_pss_mib", "master process tree PSS (MiB)"),
    ("minions_pss_mib", "all minions PSS (MiB)"),
]


def report(rows, worker_threads, batch):
    sizes = [row["minions"] for row in rows]
    width = 52
    print(f"\nscale lab: one master (worker_threads {worker_threads}), MariaDB, salt --batch-size {batch}; "
          f"load average now {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print("figure".ljust(width) + "".join(f"{n:>10}" for n in sizes)
          + "".join(f"{f'x{n}/{sizes[0]}':>10}" for n in sizes[1:]))
    for key, label in LABELS:
        values = [row.get(key) for row in rows]
        line = label.ljust(width) + "".join(f"{v:>10.2f}" if v is not None else f"{'-':>10}" for v in values)
        for value in values[1:]:
            base = values[0]
            line += f"{value / base:>10.2f}" if base else f"{'-':>10}"
        print(line)
    if len(sizes) > 1:
        print("minions".ljust(width) + "".join(f"{n:>10}" for n in sizes)
              + "".join(f"{n / sizes[0]:>10.2f}" for n in sizes[1:]))
    print("\nper minion at the largest size:")
    last = rows[-1]
    n = last["minions"]
    for key, label in (("pillar_cpu_s", "master CPU per pillar render (ms)"),
                       ("pillar_queries", "database statements per pillar render"),
                       ("ping_cpu_s", "master CPU per test.ping return (ms)"),
                       ("state_cpu_s", "master CPU per minion state.apply (ms)"),
                       ("minions_pss_mib", "minion PSS (MiB)")):
        scale = 1000 if key.endswith("cpu_s") else 1
        print(f"  {label:<46}{last[key] * scale / n:>10.2f}")
    if last["storm_engine_events_s"]:
        print(f"  {'master CPU per beacon event (ms)':<46}"
              f"{10 * (last['storm_cpu_pct'] - last['idle_cpu_pct']) / last['storm_engine_events_s']:>10.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minions", default="20,50,100", help="sizes to measure, ascending (default 20,50,100)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of ping and pillar refresh (median)")
    parser.add_argument("--batch", type=int, default=10, help="salt --batch-size")
    parser.add_argument("--storm", type=float, default=15, help="seconds of beacon storm")
    parser.add_argument("--idle", type=float, default=10, help="seconds of idle measurement")
    parser.add_argument("--worker-threads", type=int, default=5, help="master worker_threads (Salt's default 5)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    sizes = sorted({int(x) for x in args.minions.split(",") if x.strip()})
    # Stopped from outside: still stop the daemons this run started (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(f"stopped by SIGTERM; {len(rows)} sizes measured"))
    rows = []
    lab = Lab(args.worker_threads)
    try:
        lab.start_master(lab.start_db(sizes[-1]))
        started = 0
        for size in sizes:
            for index in range(started, size):
                lab.start_minion(index)
            new = [minion_name(i) for i in range(started, size)]
            ready = lab.wait_minions(new, timeout=120 + 3 * len(new))
            started = size
            row = measure(lab, [minion_name(i) for i in range(size)], args)
            row["ready_s"] = ready
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        lab.stop()
    if rows:
        report(rows, args.worker_threads, args.batch)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
