"""Scheduled tasks on real daemons: a master running the saltops_tasks engine on a MariaDB
database and one minion, with short intervals (shared by the whole module), and a second master
on the same database for the test of claims across masters."""

import json
import time

import pytest

from saltops.lab import demo
from saltops.tasks import control, definitions
from tests.support import saltenv

MINION = "tasks-web01.lab.saltops"
TASKS = {"refresh": 0.5, "heartbeat": 0.5, "stale_after": 6, "misfire_grace": 30, "min_timeout": 1,
         "alarm_url": None}


@pytest.fixture(scope="module")
def env(saltops_master_factory, make_mysql_database):
    from saltops import config
    from saltops.cmdb import api
    from saltops.store import get_store

    db_url = make_mysql_database("saltops_tasks").url
    store = get_store(db_url)
    record = {**demo.HOSTS[0], "hostname": MINION, "env": "prod", "roles": ["base", "web"]}
    api.add(store, config.load({}), "tester", record)
    extra = {"engines": [{"saltops_tasks": {}}], "saltops": {"tasks": TASKS}}
    first = saltops_master_factory("tasks-m1", db_url=db_url, extra=extra)
    # The second master has no minion: it joins only the test of claims across masters.
    second = saltops_master_factory("tasks-m2", db_url=db_url, extra=extra)
    minion = first.salt_minion_daemon(MINION, overrides=saltenv.minion_overrides())
    with first.started(start_timeout=120), minion.started(start_timeout=120):
        yield {"masters": {"tasks-m1": first, "tasks-m2": second}, "second": second, "store": store,
               "run": first.salt_run_cli(timeout=120)}


def salt_run(env, fun, *args, **kwargs):
    ret = env["run"].run(fun, *args, *(f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                                        for k, v in kwargs.items()))
    assert ret.returncode == 0, ret
    return ret.data


def runs_of(env, name):
    return list(reversed(control.history(env["store"], name, limit=1000)))


def wait_for(check, timeout=90, step=0.3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = check()
        if got:
            return got
        time.sleep(step)
    return check()


def ran(env, name, count):
    """The first ``count`` runs of ``name`` that started and ended (skipped ones aside)."""

    def check():
        done = [r for r in runs_of(env, name) if r["started"] and r["status"] not in ("queued", "running")]
        return done[:count] if len(done) >= count else None

    return wait_for(check)


def stop(env, name):
    salt_run(env, "task.disable", name)


def test_two_masters_fire_each_due_time_once(env):
    with env["second"].started(start_timeout=120):
        salt_run(env, "task.add", "beat", "test.arg", every="2s", arg=["x"])
        assert wait_for(lambda: len(runs_of(env, "beat")) >= 8, timeout=120)
        stop(env, "beat")
    done = runs_of(env, "beat")
    dues = [r["due"] for r in done]
    assert len(dues) == len(set(dues))
    raw = [r["due_at"] for r in reversed(_raw_runs(env, "beat"))]
    steps = {round(b - a, 3) for a, b in zip(raw, raw[1:])}
    assert steps == {2.0}, raw  # no due time twice, none skipped
    owners = {r["owner"].split(":")[1] for r in _raw_runs(env, "beat")}
    assert owners <= {"tasks-m1", "tasks-m2"}, owners
    # A slow start of the runner process may overlap the next due time: skipped, never run twice.
    assert all(r["status"] == "succeeded" or (r["status"] == "skipped" and "overlap: skip" in r["error"])
               for r in done if r["status"] != "running"), done


def _raw_runs(env, name):
    from saltops.tasks import runs

    with env["store"].connect() as conn:
        return runs.history(conn, name, limit=1000)


def test_a_minion_task_runs_on_its_cmdb_targets(env):
    salt_run(env, "task.add", "ping-web", "test.ping", every="2s", targets="role=web env=prod")
    [run] = ran(env, "ping-web", 1)
    stop(env, "ping-web")
    assert run["status"] == "succeeded", json.dumps(run)
    assert run["hosts"] == {MINION: {"ok": True, "retcode": 0, "output": "true"}}
    assert run["jid"] and run["retcode"] == 0


def test_an_unknown_execution_function_is_refused_by_the_minions(env):
    ret = env["run"].run("task.add", "typo", "test.pingg", "every=1m", "targets=role=web env=prod")
    assert ret.returncode == 1 and "unknown execution function 'test.pingg'" in ret.data["error"]
    with env["store"].connect() as conn:
        assert [t["name"] for t in definitions.list_all(conn)].count("typo") == 0


@pytest.mark.parametrize("overlap,statuses", [
    ("skip", {"succeeded", "skipped"}),
    ("queue", {"succeeded"}),
    ("kill", {"killed"}),
])
def test_a_slow_job_follows_the_overlap_policy(env, overlap, statuses):
    name = f"slow-{overlap}"
    salt_run(env, "task.add", name, "test.sleep", every="2s", arg=[5], targets="role=web env=prod",
             overlap=overlap, timeout=30)
    wait_for(lambda: len([r for r in runs_of(env, name) if r["status"] not in ("queued", "running")]) >= 3,
             timeout=120)
    stop(env, name)
    done = [r for r in runs_of(env, name) if r["status"] not in ("queued", "running")]
    seen = {r["status"] for r in done}
    assert statuses <= seen, done
    if overlap == "queue":
        assert "skipped" not in seen or any("already waiting" in (r.get("error") or "") for r in done)
        # Runs never overlap: each starts after the previous one ended.
        ran = [r for r in done if r["status"] == "succeeded"]
        assert all(a["ended"] <= b["started"] for a, b in zip(ran, ran[1:]))
    if overlap == "kill":
        assert all("overlap: kill" in r["error"] for r in done if r["status"] == "killed")
    if overlap == "skip":
        assert all("overlap: skip" in r["error"] for r in done if r["status"] == "skipped")


def test_a_master_restart_during_a_run_runs_nothing_twice(env):
    salt_run(env, "task.add", "long", "test.sleep", every="1h", kwarg={"s_time": 20}, timeout=60)
    salt_run(env, "task.run_now", "long")
    running = wait_for(lambda: [r for r in _raw_runs(env, "long") if r["status"] == "running"])
    assert running, runs_of(env, "long")
    owner = running[0]["owner"].split(":")[1]
    master = env["masters"][owner]
    master.terminate()
    master.start(start_timeout=120)
    [run] = wait_for(lambda: [r for r in runs_of(env, "long") if r["status"] == "interrupted"], timeout=60)
    assert "not run again" in run["error"]
    assert len(runs_of(env, "long")) == 1
    # The definitions survived and the restarted master schedules again.
    assert salt_run(env, "task.list", name="long")[0]["enabled"] is True
    salt_run(env, "task.update", "long", kwarg={"s_time": 1})
    salt_run(env, "task.run_now", "long")
    assert ran(env, "long", 2)
    assert [r["status"] for r in runs_of(env, "long")] == ["interrupted", "succeeded"]


def test_due_times_missed_while_the_master_was_down_follow_the_catch_up_rule(env):
    salt_run(env, "task.add", "catch-once", "test.arg", every="2s", catch_up="once")
    salt_run(env, "task.add", "catch-skip", "test.arg", every="2s", catch_up="skip")
    assert ran(env, "catch-once", 1) and ran(env, "catch-skip", 1)
    master = env["masters"]["tasks-m1"]
    master.terminate()
    stopped = time.time()
    # Down for longer than misfire_grace: a dozen due times pass with no master to fire them.
    time.sleep(TASKS["misfire_grace"] + 5)
    master.start(start_timeout=120)

    def caught(name):
        return [r for r in _raw_runs(env, name) if r["trigger"] == "catch_up" and r["status"] != "running"]

    [once] = wait_for(lambda: caught("catch-once"), timeout=60)
    [skipped] = wait_for(lambda: caught("catch-skip"), timeout=60)
    salt_run(env, "task.disable", "catch-once")
    salt_run(env, "task.disable", "catch-skip")
    assert once["status"] == "succeeded" and skipped["status"] == "skipped"
    assert "catch_up: skip" in skipped["error"]
    for name, caught_run in (("catch-once", once), ("catch-skip", skipped)):
        # One record for the whole downtime: its first missed due time; nothing else from the gap.
        assert stopped - 2 <= caught_run["due_at"] <= stopped + TASKS["misfire_grace"]
        missed = [r for r in _raw_runs(env, name)
                  if r["created_at"] > stopped and r["created_at"] - r["due_at"] > TASKS["misfire_grace"]]
        assert missed == [caught_run], missed
