"""Benchmark: ``salt-run deploy.run`` against plain ``salt --batch-size`` calling the same module.

Run with:

    .venv/bin/python -m pytest tests/bench/bench_deploy.py -s -p no:cacheprovider

Environment: ``BENCH_MINIONS`` (default 10), ``BENCH_SIZES`` (hosts per deploy,
default ``3,6,<BENCH_MINIONS>``), ``BENCH_REPEAT`` (default 3).

Both sides deploy a fresh version of the same tiny HTTP app to the same
minions in batches of the same size, each host fetching the artifact over
HTTP, verifying it, unpacking, switching, restarting and passing its health
probe.  The plain side is ``salt -L <hosts> --batch-size B
saltops_release.deploy ...`` (the module reads the host's settings from the
CMDB pillar).  The SaltOps side adds the CMDB target query, pre-staging on
every host before any switch, health gates per batch, the database lock and
the recording of every host and batch.  Printed: seconds per deploy per size
(the medians, each run, the ratio and the difference), how each side grows
with the number of hosts, and the start-up of each CLI alone (``salt-run
test.arg`` and ``salt-run deploy.history`` against ``salt -L <host>
test.ping``), so that like is compared with like.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from tests.functional.deploy import deploy_appkit as kit

N = int(os.environ.get("BENCH_MINIONS", "10"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
SIZES = sorted({min(int(x), N) for x in os.environ.get("BENCH_SIZES", f"3,6,{N}").split(",") if x.strip()})
ENV = "staging"
BIN = Path(sys.executable).parent


def _names():
    return [f"b{i:02d}.bench.test" for i in range(N)]


@pytest.fixture(scope="module")
def bench_dir():
    path = tempfile.mkdtemp(prefix="sobench-", dir="/tmp")
    yield path
    kit.stop_apps(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def fleet(salt_master, cmdb_store, bench_dir):
    """N minions; host i runs app ``b<k>`` for every size k > i."""
    from tests.support import saltenv

    names = _names()
    records = []
    for i, name in enumerate(names):
        apps = {
            # A generous health probe: on a loaded machine a restart may take seconds.
            f"b{k}": kit.app_settings(
                os.path.join(bench_dir, "hosts", name), kit.free_port(), keep=2, health_retries=150
            )
            for k in SIZES
            if i < k
        }
        records.append(
            {
                "hostname": name,
                "ip": "127.0.0.1",
                "lines": {("telecom", "unicom")[i % 2]: "127.0.0.1"},
                "roles": ["web"],
                "platform": "Debian-12",
                "machine_type": "vm",
                "idc": ("bj-idc1", "sh-idc1")[i % 2],
                "env": ENV,
                "status": "online",
                "owner": "bench",
                "apps": apps,
            }
        )
    repo.write(cmdb_store, "bench", records, rules=Rules.from_config(config.load({})))
    # The app hosts' hooks (saltops:deploy:hooks), beside the static pillar tree.
    hook_files = kit.write_hooks_pillar(salt_master.config["pillar_roots"]["base"][0], also=["saltops"])
    factories = [salt_master.salt_minion_daemon(name, overrides=saltenv.minion_overrides()) for name in names]
    started = []
    try:
        for factory in factories:
            factory.start(start_timeout=180)
            started.append(factory)
        salt = _salt(salt_master, "-L", ",".join(names), "saltutil.sync_modules")
        assert salt.returncode == 0, salt.stderr
        salt = _salt(salt_master, "-L", ",".join(names), "saltutil.refresh_pillar", "wait=True")
        assert salt.returncode == 0, salt.stderr
        yield names, {r["hostname"]: r for r in records}
    finally:
        for factory in reversed(started):
            factory.terminate()
        repo.remove(cmdb_store, "bench", names, purge=True)
        for path in hook_files:
            os.unlink(path)


def _run_side(master, side, app, hosts, batch, version, url, digest):
    if side == "plain":
        return _salt(
            master,
            "-L",
            ",".join(hosts),
            "--batch-size",
            str(batch),
            "saltops_release.deploy",
            app,
            version,
            url,
            digest,
        )
    return _salt_run(
        master,
        "deploy.run",
        f"app={app}",
        f"env={ENV}",
        f"version={version}",
        f"artifact={url}",
        f"sha256={digest}",
        f"batch_size={batch}",
        "max_share=1.0",
    )


def _explain(master, ret):
    """What went wrong with a run (salt-run --quiet prints nothing): its output and the last deploy."""
    cmd = [
        str(BIN / "salt-run"),
        f"--config-dir={master.config_dir}",
        "--out=json",
        "deploy.history",
        "limit=1",
    ]
    last = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return f"{ret.stdout}{ret.stderr}\nlast deploy: {last.stdout}"


def _salt(master, *args):
    cmd = [
        str(BIN / "salt"),
        f"--config-dir={master.config_dir}",
        "--out=json",
        "--static",
        "-t",
        "120",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _salt_run(master, *args):
    cmd = [str(BIN / "salt-run"), f"--config-dir={master.config_dir}", "--out=json", "--quiet", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _startup(master, names):
    """Median seconds of each CLI doing (almost) nothing: what a deploy pays before any work."""
    probes = {
        "salt -L <1 host> test.ping": lambda: _salt(master, "-L", names[0], "test.ping"),
        "salt-run test.arg": lambda: _salt_run(master, "test.arg"),
        "salt-run deploy.history limit=1": lambda: _salt_run(master, "deploy.history", "limit=1"),
    }
    out = {}
    for label, probe in probes.items():
        probe()
        runs = []
        for _ in range(max(3, REPEAT)):
            start = time.monotonic()
            ret = probe()
            runs.append(time.monotonic() - start)
            assert ret.returncode == 0, ret.stdout + ret.stderr
        out[label] = statistics.median(runs)
    return out


def _growth(rows):
    """Least-squares slope (s/host) and intercept (s) of the medians against hosts, per side."""
    xs = [r[0] for r in rows]
    out = {}
    for side, col in (("salt -b", 2), ("deploy.run", 3), ("difference", None)):
        ys = [(r[3] - r[2]) if col is None else r[col] for r in rows]
        if len(xs) < 2:
            out[side] = (0.0, ys[0])
            continue
        mx, my = statistics.mean(xs), statistics.mean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        out[side] = (slope, my - slope * mx)
    return out


def _timeline(event_listener, master_id, started):
    """The master's events of one deploy, as offsets from the CLI's start (where the time goes)."""
    events = event_listener.get_events(
        [
            (master_id, "saltops/deploy/*"),
            (master_id, "salt/run/*/new"),
            (master_id, "salt/run/*/ret"),
            (master_id, "salt/job/*/new"),
            (master_id, "salt/job/*/ret/*"),
        ],
        after_time=started,
    )
    lines = []
    for event in sorted(events, key=lambda e: e.stamp):
        tag = event.tag
        if tag.startswith("salt/job/") and "/ret/" in tag:
            label = f"ret {event.data.get('fun')} {tag.rsplit('/', 1)[-1]}"
        elif tag.startswith("salt/job/"):
            label = f"publish {event.data.get('fun')} ({len(event.data.get('minions') or [])} minions)"
        elif tag.startswith("salt/run/"):
            label = f"runner {tag.rsplit('/', 1)[-1]}"
        else:
            label = tag.rsplit("/", 1)[-1]
        lines.append(f"    {event.stamp.timestamp() - started:6.3f} {label}")
    return lines


def test_deploy_vs_plain_batch(fleet, salt_master, bench_dir, event_listener):
    names, records = fleet
    timelines = {}
    startup = _startup(salt_master, names)
    www = os.path.join(bench_dir, "www")
    os.makedirs(www)
    rows = []
    counter = 0
    with kit.ArtifactServer(www) as server:
        for size in SIZES:
            app = f"b{size}"
            hosts = names[:size]
            batch = max(1, size // 3)
            plain, ours = [], []
            # Warm-up (not timed), once per side: every host then runs the app, so every timed
            # deploy replaces a running instance, and both CLIs have loaded their modules once.
            for side in ("plain", "saltops"):
                counter += 1
                version = f"{counter}.0.0"
                path, digest = kit.build_artifact(www, version, app=app)
                ret = _run_side(salt_master, side, app, hosts, batch, version, server.url(path), digest)
                assert ret.returncode == 0, _explain(salt_master, ret)
            for _ in range(REPEAT):
                for side in ("plain", "saltops"):
                    counter += 1
                    version = f"{counter}.0.0"
                    path, digest = kit.build_artifact(www, version, app=app)
                    url = server.url(path)
                    start, wall = time.monotonic(), time.time()
                    ret = _run_side(salt_master, side, app, hosts, batch, version, url, digest)
                    elapsed = time.monotonic() - start
                    if os.environ.get("BENCH_TIMELINE"):
                        timelines[(size, side)] = [f"    {elapsed:6.3f} CLI exit"] + _timeline(
                            event_listener, salt_master.id, wall
                        )
                    assert ret.returncode == 0, _explain(salt_master, ret)
                    (plain if side == "plain" else ours).append(elapsed)
                    for name in hosts:
                        status = kit.get(f"http://127.0.0.1:{records[name]['apps'][app]['port']}/healthz")
                        assert status == (200, f"ok {version}"), (name, status)
            rows.append((size, batch, statistics.median(plain), statistics.median(ours), plain, ours))
    print()
    print(f"deploy of a tiny HTTP app, {REPEAT} timed run(s) per side, seconds per deploy (median)")
    print(
        f"{'hosts':>5} {'batch':>5} {'salt -b':>9} {'deploy.run':>11} {'ratio':>6} {'diff':>6}"
        "   runs (plain | deploy.run)"
    )
    for size, batch, plain_s, ours_s, plain, ours in rows:
        runs = " ".join(f"{x:.2f}" for x in plain) + " | " + " ".join(f"{x:.2f}" for x in ours)
        print(
            f"{size:>5} {batch:>5} {plain_s:>9.2f} {ours_s:>11.2f} {ours_s / plain_s:>6.2f} "
            f"{ours_s - plain_s:>+6.2f}   {runs}"
        )
    print("growth with hosts (least squares over the sizes):")
    for side, (slope, intercept) in _growth(rows).items():
        print(f"  {side:<11} {slope:>7.3f} s/host  {intercept:>6.2f} s at 0 hosts")
    print("CLI start-up alone (median):")
    for label, seconds in startup.items():
        print(f"  {label:<34} {seconds:.2f} s")
    for (size, side), lines in sorted(timelines.items()):
        print(f"timeline of the last {side} run on {size} hosts (seconds from the CLI's start):")
        print("\n".join(sorted(lines, key=lambda line: float(line.split()[0]))))
