"""Benchmark: CMDB pillar cost per minion at 1k, 10k and 100k hosts (MariaDB).

    .venv/bin/python tests/bench/bench_pillar.py [--sizes 1000,10000,100000] [--renders 400]

Compares SaltOps' ext_pillar (``saltops_cmdb``, loaded through Salt's own
pillar loader, with its defaults: the version stamp for writes through this
master, a database check at most once a second for the others) with a baseline that does what
``saltext-mysql``'s ext_pillar does: a new PyMySQL connection per render, the
queries for the minion's row, roles, lines and apps (plus the backends query
for a balancer), then close.  Both must return the same ``cmdb``/``cmdb_lb``
data; the benchmark checks that before timing anything.

The CMDB lives in a fresh, uniquely named database on the MariaDB server at
127.0.0.1:3306 (``SALTOPS_TEST_MYSQL`` to change it), dropped at the end.  It
grows from one size to the next; hosts are written with bulk inserts (the
import path is benchmarked elsewhere).  Also printed: the time to load the
snapshot whole and to refresh it after one change, the snapshot file's size,
and the memory of a process holding the 100k-host snapshot (RSS, measured in a
fresh child process).
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import pymysql
import sqlalchemy as sa

from saltops.cmdb.schema import host_apps, host_lines, host_roles, hosts
from saltops.pillar.snapshot import BALANCER_APP_KEYS
from saltops.store.audit import utcnow
from saltops.store.engine import Store
from saltops.store.schema import meta
from tests.support import mysql as mysql_support

LB_SERVES = {"lb": "web"}
ENVS = [("prod", 70), ("staging", 15), ("test", 10), ("dev", 5)]
IDCS = ["bj-idc1", "bj-idc2", "sh-idc1", "gz-idc1"]
# role -> share of hosts (every host also has "base")
ROLES = [("web", 0.40), ("db", 0.10), ("cache", 0.10), ("monitor", 0.05), ("lb", 0.01)]


# --------------------------------------------------------------------------- data


def make_hosts(start, count, rng):
    """Host records ``start .. start+count-1`` with a realistic mix of roles, envs and lines."""
    env_names = [e for e, _ in ENVS]
    env_weights = [w for _, w in ENVS]
    out = []
    for i in range(start, start + count):
        env = rng.choices(env_names, env_weights)[0]
        idc = IDCS[i % len(IDCS)]
        roles = ["base"]
        pick = rng.random()
        acc = 0.0
        for role, share in ROLES:
            acc += share
            if pick < acc:
                roles.append(role)
                break
        a, b = (i >> 8) & 255, i & 255
        status = rng.choices(["online", "maintenance", "offline"], [94, 4, 2])[0]
        apps = {}
        if "web" in roles:
            apps = {"shop": {"port": 8000 + i % 4, "health_url": "/healthz", "workers": 4}}
        elif "db" in roles:
            apps = {"mysql": {"port": 3306, "server_id": i}}
        out.append(
            {
                "hostname": f"{roles[-1]}{i:06d}.{idc}.example.com",
                "ip": f"10.{i >> 16}.{a}.{b}",
                "lines": {"telecom": f"203.{i >> 16}.{a}.{b}", "unicom": f"198.{i >> 16}.{a}.{b}"},
                "roles": sorted(roles),
                "platform": "Debian-12",
                "machine_type": "vm" if i % 3 else "physical",
                "idc": idc,
                "env": env,
                "status": status,
                "owner": f"team-{roles[-1]}",
                "apps": apps,
            }
        )
    return out


def insert_hosts(store, records):
    """Bulk insert (the CMDB import path is benchmarked on its own) and bump the version."""
    now = utcnow()
    with store.begin() as conn:
        version = conn.execute(sa.select(meta.c.value).where(meta.c.name == "cmdb_version")).scalar_one() + 1
        conn.execute(meta.update().where(meta.c.name == "cmdb_version").values(value=version))
        for i in range(0, len(records), 5000):
            chunk = records[i : i + 5000]
            conn.execute(
                hosts.insert(),
                [
                    {
                        **{
                            f: r[f]
                            for f in (
                                "hostname",
                                "ip",
                                "platform",
                                "machine_type",
                                "idc",
                                "env",
                                "status",
                                "owner",
                            )
                        },
                        "version": version,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for r in chunk
                ],
            )
            ids = dict(
                conn.execute(
                    sa.select(hosts.c.hostname, hosts.c.id).where(
                        hosts.c.hostname.in_([r["hostname"] for r in chunk])
                    )
                ).all()
            )
            roles = [{"host_id": ids[r["hostname"]], "role": role} for r in chunk for role in r["roles"]]
            lines = [
                {"host_id": ids[r["hostname"]], "line": k, "address": v}
                for r in chunk
                for k, v in r["lines"].items()
            ]
            apps = [
                {"host_id": ids[r["hostname"]], "app": k, "settings": v}
                for r in chunk
                for k, v in r["apps"].items()
            ]
            conn.execute(host_roles.insert(), roles)
            conn.execute(host_lines.insert(), lines)
            if apps:
                conn.execute(host_apps.insert(), apps)
    return version


# --------------------------------------------------------------------------- baseline


class BaselinePillar:
    """An ext_pillar the way saltext-mysql's works: one new connection and its queries per render."""

    def __init__(self, settings, database, lb_serves, ssl_disabled=False):
        self.kwargs = {
            "host": settings["host"],
            "port": settings["port"],
            "user": settings["user"],
            "password": settings["password"],
            "database": database,
            "charset": "utf8mb4",
        }
        if ssl_disabled:
            # Not what saltext-mysql does by default (PyMySQL then prepares TLS
            # for every connection): the strongest form of the baseline.
            self.kwargs["ssl_disabled"] = True
        self.lb_serves = lb_serves

    def __call__(self, minion_id):
        conn = pymysql.connect(**self.kwargs)
        try:
            cur = conn.cursor()
            cur.execute("SELECT value FROM saltops_meta WHERE name = 'cmdb_version'")
            version = cur.fetchone()[0]
            cur.execute(
                "SELECT id, hostname, ip, platform, machine_type, idc, env, status, owner "
                "FROM cmdb_hosts WHERE hostname = %s",
                (minion_id,),
            )
            row = cur.fetchone()
            if row is None:
                return {
                    "cmdb": {
                        "known": False,
                        "hostname": minion_id,
                        "status": "unknown",
                        "roles": [],
                        "reason": "minion id is not a CMDB hostname",
                        "version": version,
                    }
                }
            host_id = row[0]
            record = dict(
                zip(("hostname", "ip", "platform", "machine_type", "idc", "env", "status", "owner"), row[1:])
            )
            cur.execute("SELECT role FROM cmdb_host_roles WHERE host_id = %s ORDER BY role", (host_id,))
            record["roles"] = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT line, address FROM cmdb_host_lines WHERE host_id = %s", (host_id,))
            record["lines"] = dict(cur.fetchall())
            cur.execute("SELECT app, settings FROM cmdb_host_apps WHERE host_id = %s", (host_id,))
            record["apps"] = {app: json.loads(settings) for app, settings in cur.fetchall()}
            out = {"cmdb": {"known": True, **record, "version": version}}
            balancers = {}
            for role in record["roles"]:
                served = self.lb_serves.get(role)
                if served:
                    balancers[role] = {
                        "serves": served,
                        "env": record["env"],
                        "backends": self._backends(cur, served, record["env"]),
                    }
            if balancers:
                out["cmdb_lb"] = balancers
                # The live blue/green slots of the balancer's env, as the SaltOps pillar carries them.
                cur.execute("SELECT app, active FROM deploy_slots WHERE env = %s", (record["env"],))
                out["deploy_slots"] = {app: {"active": active} for app, active in cur.fetchall()}
            return out
        finally:
            conn.close()

    @staticmethod
    def _backends(cur, role, env):
        match = (
            "FROM cmdb_hosts h JOIN cmdb_host_roles r ON r.host_id = h.id "
            "WHERE r.role = %s AND h.env = %s AND h.status = 'online'"
        )
        cur.execute(f"SELECT h.id, h.hostname, h.ip, h.idc {match} ORDER BY h.hostname", (role, env))
        by_id = {}
        order = []
        for host_id, hostname, ip, idc in cur.fetchall():
            by_id[host_id] = {"hostname": hostname, "ip": ip, "lines": {}, "idc": idc, "apps": {}}
            order.append(host_id)
        cur.execute(
            f"SELECT l.host_id, l.line, l.address FROM cmdb_host_lines l WHERE l.host_id IN (SELECT h.id {match})",
            (role, env),
        )
        for host_id, line, address in cur.fetchall():
            by_id[host_id]["lines"][line] = address
        cur.execute(
            f"SELECT a.host_id, a.app, a.settings FROM cmdb_host_apps a WHERE a.host_id IN (SELECT h.id {match})",
            (role, env),
        )
        for host_id, app, settings in cur.fetchall():
            # A balancer gets what its haproxy configuration uses of each app.
            settings = json.loads(settings)
            by_id[host_id]["apps"][app] = {k: settings[k] for k in BALANCER_APP_KEYS if k in settings}
        return [by_id[i] for i in order]


# --------------------------------------------------------------------------- SaltOps' pillar


def saltops_pillar(db_url, workdir, check_interval=1):
    """The real ext_pillar function, loaded by Salt's pillar loader as a master does."""
    import salt.config
    import salt.loader

    opts = salt.config.apply_master_config(
        overrides={
            "root_dir": workdir,
            "cachedir": os.path.join(workdir, "cache"),
            "sock_dir": os.path.join(workdir, "sock"),
            "pki_dir": os.path.join(workdir, "pki"),
            "ext_pillar": [{"saltops_cmdb": {}}],
            # The snapshot file is written at most once an hour here, so that the
            # render timings do not include it; writing it is timed on its own.
            "saltops": {
                "db_url": db_url,
                "cmdb": {"version_check_interval": check_interval, "persist_interval": 3600},
            },
        }
    )
    funcs = salt.loader.minion_mods(opts)
    pillars = salt.loader.pillars(opts, funcs)
    return pillars["saltops_cmdb"], opts


# --------------------------------------------------------------------------- measuring


def time_renders(funs, minion_ids, rounds=3):
    """Per-render costs of each function in ``funs``.

    Each side renders the whole sample in a block of its own (so one side's
    connection teardown does not land in the other's timings), and the blocks
    alternate for ``rounds`` rounds so that load from other processes on the
    machine hits every side alike.
    """
    costs = [[] for _ in funs]
    for _ in range(rounds):
        for i, fun in enumerate(funs):
            for minion_id in minion_ids:
                start = time.perf_counter()
                fun(minion_id)
                costs[i].append(time.perf_counter() - start)
    return costs


def pick_sample(store, renders, rng):
    with store.connect() as conn:
        lbs = [
            r[0]
            for r in conn.execute(
                sa.text(
                    "SELECT h.hostname FROM cmdb_hosts h JOIN cmdb_host_roles r ON r.host_id = h.id WHERE r.role = 'lb' AND h.env = 'prod'"
                )
            )
        ]
        names = [
            r[0]
            for r in conn.execute(sa.text("SELECT hostname FROM cmdb_hosts WHERE hostname NOT LIKE 'lb%'"))
        ]
    plain = rng.sample(names, min(renders, len(names)))
    return plain, rng.sample(lbs, min(max(renders // 50, 3), len(lbs)))


def describe_difference(ours, theirs, path="", limit=5):
    """The first few places where two pillars differ (the whole pillars can be megabytes)."""
    found = []

    def walk(a, b, where):
        if len(found) >= limit:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                if key not in a or key not in b:
                    found.append(f"  {where}/{key}: only in {'saltops' if key in a else 'baseline'}")
                else:
                    walk(a[key], b[key], f"{where}/{key}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{where}[{i}]")
        elif a != b:
            found.append(f"  {where}: saltops {str(a)[:120]!r} != baseline {str(b)[:120]!r}")

    walk(ours, theirs, path)
    return "\n".join(found)


def strip_flags(pillar):
    out = json.loads(json.dumps(pillar))
    for key in ("stale", "stale_since"):
        out["cmdb"].pop(key, None)
    return out


def memory_of_snapshot(db_url):
    """RSS growth of a fresh process that loads the whole snapshot (MiB), and its blob bytes."""
    code = f"""
import gc, json, os, sys, time
sys.path.insert(0, {REPO!r})
import psutil
from saltops.cmdb import version as cmdb_version
from saltops.pillar import cache as snapshot
from saltops.store.engine import Store
store = Store({db_url!r})
proc = psutil.Process()
with store.connect() as conn:
    cmdb_version.current(conn)
gc.collect()
before = proc.memory_info().rss
start = time.perf_counter()
cache = snapshot.SnapshotCache({db_url!r}, os.path.join({tempfile.gettempdir()!r}, "bench-mem-%d.msgpack" % os.getpid()), migrate=False, persist_interval=10**9, backend_roles={{"web"}})
cache._persisted_at = 0
view = cache.current()
load = time.perf_counter() - start
gc.collect()
after = proc.memory_info().rss
blobs = sum(len(b) for b in view.snapshot.packed.values())
path = os.path.join({tempfile.gettempdir()!r}, "bench-mem-file-%d.msgpack" % os.getpid())
view.snapshot.save(path, cache.source_url)
print(json.dumps({{"hosts": len(view.snapshot), "rss_mib": (after - before) / 2**20, "blob_mib": blobs / 2**20,
                   "total_rss_mib": after / 2**20, "load_s": load, "file": path}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # The snapshot alone, without the transient of reading 100k rows: a fresh
    # process loads the same snapshot from its file.
    code = f"""
import gc, json, sys, time
sys.path.insert(0, {REPO!r})
import psutil
from saltops.pillar.snapshot import Snapshot
proc = psutil.Process()
gc.collect()
before = proc.memory_info().rss
start = time.perf_counter()
snap = Snapshot.load({result["file"]!r}, roles={{"web"}})
load = time.perf_counter() - start
gc.collect()
print(json.dumps({{"rss_mib": (proc.memory_info().rss - before) / 2**20, "load_s": load, "hosts": len(snap)}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    from_file = json.loads(out.stdout.strip().splitlines()[-1])
    os.unlink(result["file"])
    result["file_rss_mib"] = from_file["rss_mib"]
    result["file_load_s"] = from_file["load_s"]
    return result


def mean_us(costs):
    """The median, in µs (robust against the other processes on a shared machine)."""
    return statistics.median(costs) * 1e6


def p95_us(costs):
    return sorted(costs)[int(len(costs) * 0.95) - 1] * 1e6


def p99_us(costs):
    return sorted(costs)[int(len(costs) * 0.99) - 1] * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument(
        "--renders", type=int, default=300, help="typical minions rendered per size (3 rounds each)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database (prints its name)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    problem = mysql_support.server_problem()
    if problem:
        sys.exit(problem)
    settings = mysql_support.server_settings()
    database = mysql_support.create_database("saltops_bench")
    workdir = tempfile.mkdtemp(prefix="bench-pillar-")
    rng = random.Random(20260101)
    results = []
    try:
        store = Store(database.url)
        store.migrate()
        ext_pillar, opts = saltops_pillar(database.url, workdir)
        from saltops import config
        from saltops.cmdb import version as cmdb_version
        from saltops.pillar import cache as snapshot

        # The writes below are this master's: they publish its version stamp, as runners do.
        cmdb_version.publish_on_commit(store, config.load(opts)["cmdb"]["snapshot_file"])

        baseline = BaselinePillar(settings, database.name, LB_SERVES)
        baseline_notls = BaselinePillar(settings, database.name, LB_SERVES, ssl_disabled=True)
        have = 0
        for size in sizes:
            t0 = time.perf_counter()
            insert_hosts(store, make_hosts(have, size - have, rng))
            have = size
            print(f"[{size} hosts] inserted in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
            plain, lbs = pick_sample(store, args.renders, rng)

            # Cold start: the first render loads the snapshot whole.
            snapshot.forget_caches()
            t0 = time.perf_counter()
            ext_pillar(plain[0], {})
            full_load = time.perf_counter() - t0
            (cache,) = snapshot._CACHES.values()  # pylint: disable=protected-access

            # Same answers from both sides before timing anything.
            for minion_id in plain[:20] + lbs[:2] + ["stranger.example.com"]:
                ours, theirs = strip_flags(ext_pillar(minion_id, {})), strip_flags(baseline(minion_id))
                if ours != theirs:
                    raise SystemExit(f"pillar mismatch for {minion_id}:\n{describe_difference(ours, theirs)}")

            ours_plain, base_plain, notls_plain = time_renders(
                [lambda m, f=ext_pillar: f(m, {}), baseline, baseline_notls], plain
            )
            ours_lb, base_lb, notls_lb = time_renders(
                [lambda m, f=ext_pillar: f(m, {}), baseline, baseline_notls], lbs
            )
            backends = len(ext_pillar(lbs[0], {})["cmdb_lb"]["lb"]["backends"])

            # One change through this master, then the very next render sees it
            # (read-your-writes through the stamp) and refreshes incrementally.
            with store.begin() as conn:
                version = cmdb_version.bump(conn)
                conn.execute(
                    hosts.update()
                    .where(hosts.c.hostname == plain[1])
                    .values(ip="10.255.255.254", version=version)
                )
            t0 = time.perf_counter()
            assert ext_pillar(plain[1], {})["cmdb"]["ip"] == "10.255.255.254"
            incremental = time.perf_counter() - t0
            t0 = time.perf_counter()
            cache._snapshot.save(os.path.join(workdir, "timed-save.msgpack"), cache.source_url)  # pylint: disable=protected-access
            save_s = time.perf_counter() - t0
            snap_file = opts["cachedir"] + "/saltops/cmdb-snapshot.msgpack"
            checks = cache.stats["checks"]
            # The strict setting, version_check_interval 0: one query per render.
            # Salt binds a loaded module's __opts__ to the last loader that
            # loaded it, so the module is loaded again for this and again afterwards.
            ext_pillar_0, _ = saltops_pillar(database.url, os.path.join(workdir, "strict"), check_interval=0)
            ext_pillar_0(plain[0], {})
            (ours_0,) = time_renders([lambda m, f=ext_pillar_0: f(m, {})], plain)
            ext_pillar, opts = saltops_pillar(database.url, workdir)
            # Fleet mix: lb share of the CMDB, rendered at their own cost.
            lb_share = ROLES[-1][1]
            results.append(
                {
                    "hosts": size,
                    "ours_us": mean_us(ours_plain),
                    "ours_p95_us": p95_us(ours_plain),
                    "ours_p99_us": p99_us(ours_plain),
                    "base_us": mean_us(base_plain),
                    "base_p95_us": p95_us(base_plain),
                    "ours_0_us": mean_us(ours_0),
                    "notls_us": mean_us(notls_plain),
                    "notls_lb_us": mean_us(notls_lb),
                    "ours_lb_us": mean_us(ours_lb),
                    "base_lb_us": mean_us(base_lb),
                    "backends": backends,
                    "ours_mix_us": (1 - lb_share) * mean_us(ours_plain) + lb_share * mean_us(ours_lb),
                    "base_mix_us": (1 - lb_share) * mean_us(base_plain) + lb_share * mean_us(base_lb),
                    "full_load_s": full_load,
                    "incremental_ms": incremental * 1e3,
                    "save_s": save_s,
                    "file_mib": os.path.getsize(snap_file) / 2**20 if os.path.exists(snap_file) else 0,
                    "checks": checks,
                }
            )
            print(f"[{size} hosts] measured", file=sys.stderr)
        memory = memory_of_snapshot(database.url)
    finally:
        if args.keep:
            print(f"kept database {database.name}", file=sys.stderr)
        else:
            database.drop()

    first = results[0]
    print()
    print("CMDB pillar cost per minion render, typical (non-balancer) minions; MariaDB; median µs (p95)")
    print(
        "  saltops      ext_pillar saltops_cmdb with its defaults: the version stamp (a write through this\n"
        "               master is seen by the next render) and a database check at most once a second"
    )
    print("  saltops@0    the strict setting, version_check_interval 0: one version query per render")
    print(
        "  baseline     saltext-mysql style: new PyMySQL connection (default settings) + 5 queries per render"
    )
    print("  no-TLS base  the same baseline with ssl_disabled=True (its fastest form)")
    print()
    header = (
        f"{'hosts':>7} | {'saltops':>13} | {'p99':>5} | {'saltops@0':>10} | {'baseline':>15} | {'base/saltops':>12} "
        f"| {'no-TLS base':>11} | {'noTLS/saltops':>13} | {'saltops vs 1k':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['hosts']:>7} | {r['ours_us']:>6.0f} ({r['ours_p95_us']:>4.0f}) | {r['ours_p99_us']:>5.0f} | "
            f"{r['ours_0_us']:>10.0f} | "
            f"{r['base_us']:>6.0f} ({r['base_p95_us']:>6.0f}) | {r['base_us'] / r['ours_us']:>11.1f}x | "
            f"{r['notls_us']:>11.0f} | {r['notls_us'] / r['ours_us']:>12.1f}x | {r['ours_us'] / first['ours_us']:>12.2f}x"
        )
    print()
    print("Balancer minions (cmdb_lb with the online backends of their env); median µs")
    print()
    header = (
        f"{'hosts':>7} | {'backends':>8} | {'saltops':>8} | {'baseline':>9} | {'base/saltops':>12} | "
        f"{'no-TLS base':>11} | {'fleet mix base/saltops':>22}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['hosts']:>7} | {r['backends']:>8} | {r['ours_lb_us']:>8.0f} | {r['base_lb_us']:>9.0f} | "
            f"{r['base_lb_us'] / r['ours_lb_us']:>11.1f}x | {r['notls_lb_us']:>11.0f} | "
            f"{r['base_mix_us'] / r['ours_mix_us']:>21.1f}x"
        )
    print()
    print("Snapshot upkeep (per master worker process)")
    print()
    print(
        f"{'hosts':>7} | {'full load s':>11} | {'render after 1 change ms':>24} | {'snapshot file MiB':>17} "
        f"| {'file write s':>12}"
    )
    for r in results:
        print(
            f"{r['hosts']:>7} | {r['full_load_s']:>11.2f} | {r['incremental_ms']:>24.1f} | {r['file_mib']:>17.1f} "
            f"| {r['save_s']:>12.2f}"
        )
    print()
    print(f"Memory of one process holding the {memory['hosts']}-host snapshot:")
    print(
        f"  loaded from the database: +{memory['rss_mib']:.0f} MiB RSS in {memory['load_s']:.1f}s "
        f"(includes the freed rows of the full read; process total {memory['total_rss_mib']:.0f} MiB)"
    )
    print(
        f"  loaded from its file:     +{memory['file_rss_mib']:.0f} MiB RSS in {memory['file_load_s']:.1f}s "
        f"(the snapshot itself: packed records {memory['blob_mib']:.0f} MiB + index)"
    )
    last = results[-1]
    print()
    print(
        f"Targets: baseline/saltops at {last['hosts']} hosts = {last['base_us'] / last['ours_us']:.1f}x "
        f"(no-TLS baseline {last['notls_us'] / last['ours_us']:.1f}x; >= 10x wanted); "
        f"saltops {last['hosts']} vs {first['hosts']} hosts = {last['ours_us'] / first['ours_us']:.2f}x (<= 2x wanted); "
        f"median {last['ours_us']:.0f} µs (<= 100 wanted), p99 {last['ours_p99_us']:.0f} µs (< 250 wanted) "
        f"at {last['hosts']} hosts; the strict setting costs {last['ours_0_us'] / last['ours_us']:.1f}x the default"
    )


if __name__ == "__main__":
    main()
