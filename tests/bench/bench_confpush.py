"""Benchmark: ``salt-run confpush.push`` against ``salt --batch-size`` ``state.apply`` of the same files.

Run with:

    .venv/bin/python -m pytest tests/bench/bench_confpush.py -s -p no:cacheprovider

Environment: ``BENCH_MINIONS`` (default 6), ``BENCH_REPEAT`` (default 3),
``BENCH_BATCH`` (hosts per batch, default half the minions).

Both sides write the same three files on every minion (its own directory, so
that minions sharing this machine do not share files), each time with new
content: a JSON file validated by ``python3 -m json.tool`` (``check_cmd``), an
nginx-style file and a plain file, with ``backup: minion``, then a reload
command and a health check run ``onchanges``.  The plain side is ``salt -L
<hosts> --batch-size B state.apply cpbench pillar='{"cpbench_port": N}'``
(the SLS renders the files on the minion).  The SaltOps side is ``salt-run
confpush.push`` of a stored set (stored before the clock starts): the CMDB
target query, rendering on the master, the lock, the batch plan, the copy
kept for a restore, and the record of every host's files.  Printed: seconds
per push (median and each run) and the ratio.
"""

import json
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

N = int(os.environ.get("BENCH_MINIONS", "6"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
BATCH = int(os.environ.get("BENCH_BATCH", str(max(1, N // 2))))
APP, ENV = "cpbench", "staging"
BIN = Path(sys.executable).parent


def _names():
    return [f"p{i:02d}.cpbench.test" for i in range(N)]


@pytest.fixture(scope="module")
def bench_dir():
    path = tempfile.mkdtemp(prefix="socpb-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _sls(base):
    """The plain side's SLS: the same files, states and options as a confpush push."""
    files = {
        "app": ("app.json", '{"port": {{ port }}, "idc": "{{ grains[\'id\'] }}"}', "python3 -m json.tool"),
        "nginx": ("nginx.conf", "server {\n  listen {{ port }};\n}", None),
        "plain": ("plain.txt", "port={{ port }}", None),
    }
    out = ["{% set port = pillar['cpbench_port'] %}", f"{{% set base = '{base}/' ~ grains['id'] %}}"]
    for sid, (name, contents, check) in files.items():
        out += [
            f"cpbench-{sid}:",
            "  file.managed:",
            f"    - name: {{{{ base }}}}/{name}",
            f"    - contents: {json.dumps(contents)}",
            "    - makedirs: True",
            "    - backup: minion",
            "    - show_changes: True",
        ]
        if check:
            out.append(f"    - check_cmd: {check}")
    for sid, cmd in (("reload", '"true"'), ("health", "python3 -m json.tool {{ base }}/app.json")):
        out += [f"cpbench-{sid}:", "  cmd.run:", f"    - name: {cmd}", "    - onchanges:"]
        out += [f"      - file: cpbench-{f}" for f in files]
    return "\n".join(out) + "\n"


def _spec(base, port):
    root = f"{base}/{{hostname}}"
    return {
        "roots": [base],
        "values": {"port": port},
        "health_cmd": f"python3 -m json.tool {root}/app.json",
        "files": [
            {
                "path": f"{root}/app.json",
                "template": '{"port": {{ values.port }}, "idc": "{{ cmdb.idc }}"}',
                "validator": "python3 -m json.tool",
                "reload_cmd": "true",
            },
            {"path": f"{root}/nginx.conf", "template": "server {\n  listen {{ values.port }};\n}"},
            {"path": f"{root}/plain.txt", "template": "port={{ values.port }}"},
        ],
    }


@pytest.fixture(scope="module")
def fleet(salt_master, cmdb_store, bench_dir):
    from tests.support import saltenv

    names = _names()
    records = [
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
            "apps": {APP: {}},
        }
        for i, name in enumerate(names)
    ]
    repo.write(cmdb_store, "bench", records, rules=Rules.from_config(config.load({})))
    factories = [salt_master.salt_minion_daemon(name, overrides=saltenv.minion_overrides()) for name in names]
    started = []
    try:
        for factory in factories:
            factory.start(start_timeout=180)
            started.append(factory)
        # Fire the CMDB change of the write above now, while no set exists: the
        # reactor's confpush.on_cmdb_change then has nothing to push.
        ret = _cli(salt_master, "salt-run", "confpush.history", f"app={APP}", f"env={ENV}")
        assert ret.returncode == 0, ret.stdout + ret.stderr
        with salt_master.state_tree.base.temp_file("cpbench.sls", _sls(os.path.join(bench_dir, "plain"))):
            yield names
    finally:
        for factory in reversed(started):
            factory.terminate()
        repo.remove(cmdb_store, "bench", names, purge=True)


def _cli(master, tool, *args):
    cmd = [str(BIN / tool), f"--config-dir={master.config_dir}", "--out=json", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _plain(master, names, port):
    return _cli(
        master,
        "salt",
        "--static",
        "-t",
        "120",
        "-L",
        ",".join(names),
        "--batch-size",
        str(BATCH),
        "state.apply",
        "cpbench",
        f'pillar={{"cpbench_port": {port}}}',
    )


def _ours(master, port):
    return _cli(
        master,
        "salt-run",
        "confpush.push",
        f"app={APP}",
        f"env={ENV}",
        f"batch_size={BATCH}",
        "max_share=1.0",
    )


def _store(master, base, port):
    ret = _cli(
        master,
        "salt-run",
        "confpush.set",
        f"app={APP}",
        f"env={ENV}",
        f"spec={json.dumps(_spec(base, port))}",
    )
    assert ret.returncode == 0, ret.stdout + ret.stderr


def _wait_free(store):
    """Until no push of the set runs (a reactor push would hold the lock): not part of the timing."""
    import sqlalchemy as sa

    from saltops.confpush.schema import pushes

    for _ in range(600):
        with store.connect() as conn:
            running = conn.execute(
                sa.select(pushes.c.id).where(pushes.c.app == APP, pushes.c.status == "running")
            ).first()
        if running is None:
            return
        time.sleep(0.1)
    raise AssertionError("a push of the benchmark's set never ended")


def _startup(master, names):
    """Median seconds of each CLI doing (almost) nothing: what a push pays before any work."""
    probes = {
        "salt -L <1 host> test.ping": lambda: _cli(master, "salt", "-L", names[0], "test.ping"),
        "salt-run test.arg": lambda: _cli(master, "salt-run", "test.arg"),
        "salt-run confpush.history": lambda: _cli(
            master, "salt-run", "confpush.history", f"app={APP}", f"env={ENV}"
        ),
    }
    out = {}
    for label, probe in probes.items():
        runs = []
        for _ in range(3):
            start = time.monotonic()
            ret = probe()
            runs.append(time.monotonic() - start)
            assert ret.returncode == 0, ret.stdout + ret.stderr
        out[label] = statistics.median(runs)
    return out


def _timeline(event_listener, master_id, started, until):
    """The master's events of one run, as offsets from the CLI's start (where the time goes)."""
    events = event_listener.get_events(
        [
            (master_id, "saltops/confpush/*"),
            (master_id, "salt/job/*/new"),
            (master_id, "salt/job/*/ret/*"),
        ],
        after_time=started,
    )
    lines = []
    for event in sorted(events, key=lambda e: e.stamp):
        if event.stamp.timestamp() - started > until:
            break
        tag = event.tag
        if tag.startswith("salt/job/") and "/ret/" in tag:
            label = f"ret {event.data.get('fun')} {tag.rsplit('/', 1)[-1]}"
        elif tag.startswith("salt/job/"):
            label = f"publish {event.data.get('fun')} ({len(event.data.get('minions') or [])} minions)"
        else:
            label = tag
        lines.append(f"    {event.stamp.timestamp() - started:6.3f} {label}")
    return lines


def test_confpush_vs_plain_batch_state_apply(fleet, salt_master, bench_dir, cmdb_store, event_listener):
    names = fleet
    ours_base = os.path.join(bench_dir, "ours")
    plain, ours = [], []
    port = 10000
    for run in range(REPEAT + 1):  # the first round warms both sides up and is not counted
        port += 1
        start, wall_plain = time.monotonic(), time.time()
        ret = _plain(salt_master, names, port)
        elapsed_plain = time.monotonic() - start
        assert ret.returncode == 0, ret.stdout[-2000:] + ret.stderr[-2000:]
        _store(salt_master, ours_base, port)
        _wait_free(cmdb_store)
        start, wall_ours = time.monotonic(), time.time()
        ret = _ours(salt_master, port)
        elapsed_ours = time.monotonic() - start
        assert ret.returncode == 0, ret.stdout[-2000:] + ret.stderr[-2000:]
        for name in names:
            for side in ("plain", "ours"):
                text = Path(bench_dir, side, name, "nginx.conf").read_text()
                assert f"listen {port};" in text, (side, name, text)
        if run:
            plain.append(elapsed_plain)
            ours.append(elapsed_ours)
    timelines = {
        "salt --batch-size": _timeline(event_listener, salt_master.id, wall_plain, elapsed_plain),
        "confpush.push": _timeline(event_listener, salt_master.id, wall_ours, elapsed_ours),
    }
    startup = _startup(salt_master, names)
    p, o = statistics.median(plain), statistics.median(ours)
    print()
    print(f"{N} minions, batches of {BATCH}, 3 files per host, {REPEAT} timed run(s) per side (seconds)")
    print(f"  salt --batch-size state.apply  median {p:6.2f}   runs " + " ".join(f"{x:.2f}" for x in plain))
    print(f"  salt-run confpush.push         median {o:6.2f}   runs " + " ".join(f"{x:.2f}" for x in ours))
    print(f"  ratio confpush / plain         {o / p:6.2f}  (target <= 1.2)")
    print("CLI start-up alone (median of 3):")
    for label, seconds in startup.items():
        print(f"  {label:<30} {seconds:.2f} s")
    if os.environ.get("BENCH_TIMELINE"):
        for side, lines in timelines.items():
            print(f"timeline of the last {side} run (seconds from the CLI's start):")
            print("\n".join(lines))
