"""Benchmark: how late the task scheduler publishes due jobs, and what it costs when nothing is due.

Run with:

    .venv/bin/python -m pytest tests/bench/bench_tasks.py -s -p no:cacheprovider

Environment: ``BENCH_TASKS`` (defined tasks, default 1000), ``BENCH_DUE`` (of
them due in the same minute, default 100), ``BENCH_IDLE`` (seconds of the idle
measurement, default 60), ``BENCH_WORKERS`` (the master's ``worker_threads``
and the engine's ``publishers``, default 5), ``BENCH_SPREAD`` (seconds the due
times are spread over: 0, the default, puts them all at the same instant).

1. Delay: a master running the ``saltops_tasks`` engine on a MariaDB database,
   one minion.  ``BENCH_TASKS`` tasks are defined (through
   :func:`saltops.tasks.definitions.add`, the function behind ``task.add``;
   the function check is the one thing left out, since asking the minion a
   thousand times measures the minion), ``BENCH_DUE`` of them ``test.ping`` on
   the minion with the same cron minute, the rest daily.  The delay of each
   run is its job id's time (``utc_jid``: the moment the master published
   the job) minus its due time.  Printed: p50, p95, p99 and max.
2. Idle cost: a :class:`~saltops.tasks.driver.Scheduler` in this process,
   with the same thousand definitions and none due, runs for ``BENCH_IDLE``
   seconds; printed: the CPU seconds it used per minute (its database
   polling every ``refresh`` seconds is all it does).
"""

import datetime
import os
import statistics
import threading
import time

import pytest

from saltops.lab import demo
from saltops.tasks import definitions, runs
from saltops.tasks import settings as task_settings

N_TASKS = int(os.environ.get("BENCH_TASKS", "1000"))
N_DUE = int(os.environ.get("BENCH_DUE", "100"))
IDLE = float(os.environ.get("BENCH_IDLE", "60"))
# The master's request workers (Salt's default is 5; the test masters use 3) and as many publishers.
WORKERS = int(os.environ.get("BENCH_WORKERS", "5"))
# Seconds over which the due tasks' times are spread (0: all at the same instant, the worst case).
SPREAD = float(os.environ.get("BENCH_SPREAD", "0"))
MINION = "bench-tasks-web01"


def accept(_kind, _fun, _args, _kwargs, _hostnames):
    return []


def due_times(due_minute):
    """The due time of each of the ``N_DUE`` tasks: all at the minute, or spread over ``SPREAD`` seconds."""
    start = due_minute.timestamp()
    return [start + (i * SPREAD / N_DUE if SPREAD else 0.0) for i in range(N_DUE)]


def define(store, settings, due_minute):
    """``N_TASKS`` tasks: ``N_DUE`` due in ``due_minute`` (UTC), the rest once a day at 04:00.

    With no spread the due ones share a cron minute; spread, each is a one-off at its time.
    """
    now = time.time()
    dues = due_times(due_minute)
    for i in range(N_TASKS):
        fields = {"fun": "test.ping", "targets": f"host={MINION}", "timeout": 60}
        if i >= N_DUE:
            fields["cron"] = "0 4 * * *"
        elif SPREAD:
            fields["at"] = dues[i]
        else:
            fields["cron"] = f"{due_minute.minute} {due_minute.hour} * * *"
        definitions.add(store, f"bench-{i:04d}", fields, "bench", settings, now, accept)


def jid_time(jid):
    moment = datetime.datetime.strptime(jid, "%Y%m%d%H%M%S%f").replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@pytest.fixture(scope="module")
def bench_env(saltops_master_factory, make_mysql_database):
    from saltops import config
    from saltops.cmdb import api
    from saltops.store import get_store

    db_url = make_mysql_database("saltops_bench_tasks").url
    store = get_store(db_url)
    api.add(store, config.load({}), "bench", {**demo.HOSTS[0], "hostname": MINION})
    extra = {"engines": [{"saltops_tasks": {}}], "utc_jid": True, "worker_threads": WORKERS,
             "saltops": {"tasks": {"alarm_url": None, "publishers": WORKERS}}}
    master = saltops_master_factory("bench-tasks-m1", db_url=db_url, extra=extra)
    # Threads, not a process per job: a hundred test.ping processes at once on two cores would
    # measure the minion's forks rather than the scheduler.
    minion = master.salt_minion_daemon(MINION, overrides={"acceptance_wait_time": 2, "multiprocessing": False})
    with master.started(start_timeout=120), minion.started(start_timeout=120):
        yield {"store": store, "master": master, "db_url": db_url}


def test_delay_from_due_time_to_published_job(bench_env):
    store = bench_env["store"]
    settings = task_settings.load({})
    start = datetime.datetime.now(datetime.timezone.utc)
    due_minute = (start + datetime.timedelta(seconds=90)).replace(second=0, microsecond=0)
    began = time.time()
    define(store, settings, due_minute)
    print(f"\n{N_TASKS} tasks defined in {time.time() - began:.1f} s; {N_DUE} due from {due_minute.isoformat()} "
          f"over {SPREAD:g} s; master worker_threads and publishers {WORKERS}")
    dues = set(due_times(due_minute))
    deadline = due_minute.timestamp() + SPREAD + 120
    got = []
    while time.time() < deadline:
        with store.connect() as conn:
            got = [r for r in runs.history(conn, limit=1000) if r["due_at"] in dues and r["jid"]]
        if len(got) >= N_DUE:
            break
        time.sleep(1)
    delays = [jid_time(r["jid"]) - r["due_at"] for r in got]
    claims = [r["started_at"] - r["due_at"] for r in got]
    assert len(delays) == N_DUE, f"{len(delays)} of {N_DUE} runs published"
    print(f"delay due -> published over {N_DUE} jobs: p50 {statistics.median(delays):.3f} s, "
          f"p95 {pct(delays, 95):.3f} s, p99 {pct(delays, 99):.3f} s, max {max(delays):.3f} s")
    print(f"of which claimed (due -> run row): p50 {statistics.median(claims):.3f} s, p99 {pct(claims, 99):.3f} s")
    done = []
    while time.time() < deadline + 60:
        with store.connect() as conn:
            done = [r for r in runs.history(conn, limit=1000) if r["due_at"] in dues]
        if all(r["status"] not in ("queued", "running") for r in done):
            break
        time.sleep(1)
    print("statuses:", {s: sum(1 for r in done if r["status"] == s) for s in {r["status"] for r in done}})


def test_cpu_when_nothing_is_due(bench_env):
    from saltops.store.engine import Store
    from saltops.tasks.driver import Scheduler
    from saltops.tasks.schema import definitions as table

    store = Store(bench_env["db_url"])
    settings = task_settings.load({})
    # Every definition enabled, none due for a day (the master's own engine fires nothing either).
    with store.begin() as conn:
        conn.execute(table.update().values(enabled=True, next_due=time.time() + 86400))

    def never_start(_task, _hosts):
        raise AssertionError("nothing is due")

    scheduler = Scheduler(store, settings, never_start, master_id="bench-idle")
    thread = threading.Thread(target=scheduler.run, daemon=True)
    cpu0, wall0 = time.process_time(), time.time()
    thread.start()
    time.sleep(IDLE)
    scheduler.stopping.set()
    thread.join(10)
    cpu, wall = time.process_time() - cpu0, time.time() - wall0
    assert len(scheduler.tasks) == N_TASKS
    print(f"\nidle scheduler with {N_TASKS} tasks: {cpu:.3f} CPU s over {wall:.0f} s "
          f"= {cpu / wall * 60:.3f} CPU s per minute ({cpu / wall * 100:.2f} % of one core), "
          f"refresh every {settings['refresh']} s")
