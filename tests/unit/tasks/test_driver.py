"""The scheduler with a controllable clock: claims, overlap, catch-up, restarts, timeouts, alarms."""

import threading

import pytest
import sqlalchemy as sa

from saltops.tasks import alarm, definitions, runs
from saltops.tasks.driver import Scheduler
from saltops.tasks.results import Outcome
from saltops.tasks.schema import definitions as defs_table
from saltops.tasks.schema import runs as runs_table

T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now


class Job:
    """A job the test ends: ``finish(outcome)``; records kills."""

    def __init__(self, task, hostnames):
        self.task = task
        self.hostnames = hostnames
        self.jid = f"j{id(self)}"
        self.published_at = 0.0
        self.ended = threading.Event()
        self.outcome = None
        self.killed = False

    def finish(self, ok=True, output="done"):
        self.outcome = Outcome(ok, 0 if ok else 2, None, output)
        self.ended.set()

    def wait(self, seconds):
        self.ended.wait(min(seconds, 0.01))
        return self.outcome

    def kill(self):
        self.killed = True

    def partial(self):
        return Outcome(False, None, None, "stopped")


class Jobs:
    def __init__(self, auto=None):
        self.started = []
        self.auto = auto  # None: the test ends each job; True/False: it ends at once with that result

    def __call__(self, task, hostnames):
        job = Job(task, hostnames)
        self.started.append(job)
        if self.auto is not None:
            job.finish(self.auto, "ok" if self.auto else "boom")
        return job


def define(store, settings, functions, name="job", **fields):
    fields.setdefault("fun", "alarm.list")
    if not any(k in fields for k in ("cron", "every", "at")):
        fields["every"] = "60s"
    return definitions.add(store, name, fields, "alice", settings, T0, functions)


def all_runs(store):
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(runs_table).order_by(runs_table.c.id)).mappings()]


def make(store, settings, jobs, clock, master="m1"):
    scheduler = Scheduler(store, settings, jobs, master_id=master, clock=clock)
    scheduler.load()
    scheduler.recover(clock())
    return scheduler


def test_a_due_task_runs_once_and_its_result_is_recorded(store, settings, functions):
    define(store, settings, functions, kwargs={"state": "all"})
    clock, jobs = Clock(), Jobs(auto=True)
    scheduler = make(store, settings, jobs, clock)
    scheduler.step(T0 + 30)
    assert jobs.started == []
    clock.now = T0 + 60
    scheduler.step(clock.now)
    scheduler.step(clock.now)
    scheduler.join()
    [run] = all_runs(store)
    assert run["status"] == "succeeded" and run["due_at"] == T0 + 60 and run["trigger"] == "schedule"
    assert run["defined_by"] == "alice" and run["triggered_by"] == "scheduler"
    assert run["output"] == "ok" and run["retcode"] == 0 and run["jid"] == jobs.started[0].jid
    assert jobs.started[0].task["kwargs"] == {"state": "all"}
    with store.connect() as conn:
        assert definitions.get(conn, "job")["next_due"] == T0 + 120


def test_two_masters_on_one_store_fire_each_due_time_once(store, settings, functions):
    define(store, settings, functions)
    clock = Clock(T0 + 60)
    jobs_a, jobs_b = Jobs(auto=True), Jobs(auto=True)
    a = make(store, settings, jobs_a, clock, "m1")
    b = make(store, settings, jobs_b, clock, "m2")
    for now in (T0 + 60, T0 + 61, T0 + 120, T0 + 180):
        clock.now = now
        b.step(now)
        a.step(now)
        a.join()
        b.join()
    done = all_runs(store)
    assert sorted(r["due_at"] for r in done) == [T0 + 60, T0 + 120, T0 + 180]
    assert len(jobs_a.started) + len(jobs_b.started) == 3


def test_concurrent_claims_from_threads_give_one_run(store, settings, functions):
    define(store, settings, functions)
    clock = Clock(T0 + 60)
    schedulers = [make(store, settings, Jobs(auto=True), clock, f"m{i}") for i in range(4)]
    barrier = threading.Barrier(len(schedulers))

    def claim(scheduler):
        barrier.wait()
        scheduler.fire_due(T0 + 60)

    threads = [threading.Thread(target=claim, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in schedulers:
        s.join()
    assert [r["due_at"] for r in all_runs(store)] == [T0 + 60]


def test_a_disabled_task_never_fires(store, settings, functions):
    define(store, settings, functions)
    clock, jobs = Clock(), Jobs(auto=True)
    scheduler = make(store, settings, jobs, clock)
    definitions.set_enabled(store, "job", False, "bob", T0 + 1)
    # This scheduler still holds the old due time in memory: the claim must refuse it.
    clock.now = T0 + 60
    scheduler.fire_due(clock.now)
    scheduler.step(T0 + 3600)
    assert jobs.started == [] and all_runs(store) == []


def test_a_restart_loses_nothing_and_runs_nothing_twice(store, settings, functions):
    define(store, settings, functions)
    clock, jobs = Clock(T0 + 60), Jobs()
    first = make(store, settings, jobs, clock, "m1")
    first.step(clock.now)
    assert len(jobs.started) == 1
    first.stopping.set()  # the master stops while the run is going
    first.join()
    # The same master starts again 10 s later: the old run is interrupted, not run again.
    clock.now = T0 + 70
    again = make(store, settings, Jobs(auto=True), clock, "m1")
    again.step(clock.now)
    again.join()
    [run] = all_runs(store)
    assert run["status"] == "interrupted" and "not run again" in run["error"]
    clock.now = T0 + 120
    again.step(clock.now)
    again.join()
    assert [r["status"] for r in all_runs(store)] == ["interrupted", "succeeded"]


def test_a_run_whose_master_died_elsewhere_is_interrupted_after_stale_after(store, settings, functions):
    define(store, settings, functions)
    clock = Clock(T0 + 60)
    dead = make(store, settings, Jobs(), clock, "m1")
    dead.step(clock.now)
    dead.stopping.set()
    dead.join()
    other = make(store, settings, Jobs(auto=True), clock, "m2")
    clock.now = T0 + 65
    other.housekeeping(clock.now)
    assert all_runs(store)[0]["status"] == "running"
    clock.now = T0 + 60 + settings["stale_after"] + 1
    other.housekeeping(clock.now)
    assert all_runs(store)[0]["status"] == "interrupted"


@pytest.mark.parametrize("catch_up,expected", [("once", ["succeeded"]), ("skip", ["skipped"])])
def test_a_missed_due_time_follows_the_catch_up_rule(store, settings, functions, catch_up, expected):
    define(store, settings, functions, catch_up=catch_up)
    # No master ran for an hour: sixty due times passed.
    clock, jobs = Clock(T0 + 3600 + 5), Jobs(auto=True)
    scheduler = make(store, settings, jobs, clock)
    scheduler.step(clock.now)
    scheduler.join()
    done = all_runs(store)
    assert [r["status"] for r in done] == expected
    assert done[0]["trigger"] == "catch_up" and done[0]["due_at"] == T0 + 60
    with store.connect() as conn:
        assert definitions.get(conn, "job")["next_due"] == T0 + 3660


def test_a_short_delay_is_not_a_missed_run(store, settings, functions):
    define(store, settings, functions, catch_up="skip")
    clock, jobs = Clock(T0 + 60 + settings["misfire_grace"] - 1), Jobs(auto=True)
    scheduler = make(store, settings, jobs, clock)
    scheduler.step(clock.now)
    scheduler.join()
    assert [(r["status"], r["trigger"]) for r in all_runs(store)] == [("succeeded", "schedule")]


def slow_task(store, settings, functions, overlap):
    define(store, settings, functions, overlap=overlap)
    clock, jobs = Clock(T0 + 60), Jobs()
    scheduler = make(store, settings, jobs, clock)
    scheduler.step(clock.now)
    clock.now = T0 + 120
    scheduler.step(clock.now)
    return clock, jobs, scheduler


def test_overlap_skip_records_a_skipped_run(store, settings, functions):
    _clock, jobs, scheduler = slow_task(store, settings, functions, "skip")
    assert len(jobs.started) == 1
    statuses = [(r["status"], r["error"]) for r in all_runs(store)]
    assert statuses[0][0] == "running"
    assert statuses[1][0] == "skipped" and "still running (overlap: skip)" in statuses[1][1]
    jobs.started[0].finish()
    scheduler.join()


def test_overlap_queue_starts_the_next_run_when_the_previous_ends(store, settings, functions):
    clock, jobs, scheduler = slow_task(store, settings, functions, "queue")
    assert [r["status"] for r in all_runs(store)] == ["running", "queued"]
    clock.now = T0 + 180
    scheduler.step(clock.now)  # a third due time while one waits: at most one is queued
    assert [r["status"] for r in all_runs(store)] == ["running", "queued", "skipped"]
    jobs.started[0].finish()
    scheduler.join()
    scheduler.housekeeping(clock.now)
    assert len(jobs.started) == 2
    jobs.started[1].finish()
    scheduler.join()
    assert [r["status"] for r in all_runs(store)] == ["succeeded", "succeeded", "skipped"]


def test_overlap_kill_stops_the_running_run_and_starts_the_new_one(store, settings, functions):
    clock, jobs, scheduler = slow_task(store, settings, functions, "kill")
    scheduler.housekeeping(clock.now)  # the owner sees the kill request
    scheduler.join()
    assert jobs.started[0].killed
    scheduler.housekeeping(clock.now)
    assert len(jobs.started) == 2
    jobs.started[1].finish()
    scheduler.join()
    done = all_runs(store)
    assert [r["status"] for r in done] == ["killed", "succeeded"]
    assert "overlap: kill" in done[0]["error"]
    with store.connect() as conn:
        assert not definitions.get(conn, "job")["failing"]  # a run killed by policy is not a failure


def test_a_run_past_its_timeout_is_killed_and_fails(store, settings, functions):
    define(store, settings, functions, timeout=10)
    clock, jobs = Clock(T0 + 60), Jobs()
    scheduler = make(store, settings, jobs, clock)
    scheduler.step(clock.now)
    clock.now = T0 + 71
    scheduler.join()
    [run] = all_runs(store)
    assert run["status"] == "timeout" and jobs.started[0].killed
    with store.connect() as conn:
        assert definitions.get(conn, "job")["alarm_pending"] == "firing"


def test_a_failure_raises_an_alarm_and_the_next_success_resolves_it(store, settings, functions):
    define(store, settings, functions, notify="dba")
    clock, jobs = Clock(T0 + 60), Jobs(auto=False)
    scheduler = make(store, settings, jobs, clock)
    scheduler.step(clock.now)
    scheduler.join()
    sent = []
    assert alarm.send_pending(store, lambda body: sent.append(body) or True, clock.now, 60) == 1
    [body] = sent
    [item] = body["alerts"]
    assert item["status"] == "firing" and item["labels"] == {
        "alertname": "TaskFailed", "task": "job", "kind": "runner", "severity": "warning", "notify": "dba"}
    assert "boom" in item["annotations"]["summary"]
    # Not sent again before alarm_resend, then sent again while the task still fails.
    assert alarm.send_pending(store, lambda body: sent.append(body) or True, clock.now + 30, 60) == 0
    assert alarm.send_pending(store, lambda body: sent.append(body) or True, clock.now + 61, 60) == 1
    jobs.auto = True
    clock.now = T0 + 120
    scheduler.step(clock.now)
    scheduler.join()
    alarm.send_pending(store, lambda body: sent.append(body) or True, clock.now, 60)
    assert sent[-1]["alerts"][0]["status"] == "resolved"
    assert alarm.send_pending(store, lambda body: sent.append(body) or True, clock.now + 500, 60) == 0


def test_an_alarm_the_engine_did_not_take_is_sent_again(store, settings, functions):
    define(store, settings, functions)
    clock = Clock(T0 + 60)
    scheduler = make(store, settings, Jobs(auto=False), clock)
    scheduler.step(clock.now)
    scheduler.join()
    assert alarm.send_pending(store, lambda body: False, clock.now, 60) == 0
    assert alarm.send_pending(store, lambda body: True, clock.now + 1, 60) == 1


def test_run_now_is_started_by_the_scheduler_and_names_who_asked(store, settings, functions):
    from saltops.errors import Conflict
    from saltops.tasks import control

    define(store, settings, functions, every="1h")
    clock, jobs = Clock(T0 + 5), Jobs()
    scheduler = make(store, settings, jobs, clock)
    control.run_now(store, "job", "carol", clock.now)
    with pytest.raises(Conflict, match="already waiting"):
        control.run_now(store, "job", "carol", clock.now)
    scheduler.housekeeping(clock.now)
    jobs.started[0].finish()
    scheduler.join()
    [run] = control.history(store, "job")
    assert run["status"] == "succeeded" and run["trigger"] == "manual" and run["triggered_by"] == "carol"
    definitions.set_enabled(store, "job", False, "bob", clock.now)
    with pytest.raises(Conflict, match="disabled"):
        control.run_now(store, "job", "carol", clock.now)


def test_a_one_off_task_fires_once(store, settings, functions):
    define(store, settings, functions, every=None, at=T0 + 30)
    clock, jobs = Clock(T0 + 30), Jobs(auto=True)
    scheduler = make(store, settings, jobs, clock)
    for now in (T0 + 30, T0 + 90, T0 + 86400):
        scheduler.step(now)
        scheduler.join()
    assert len(all_runs(store)) == 1
    with store.connect() as conn:
        assert definitions.get(conn, "job")["next_due"] is None


def test_minion_targets_are_resolved_when_the_task_fires(store, settings, functions):
    from saltops import config
    from saltops.cmdb import repo
    from saltops.cmdb.model import Rules
    from tests.unit.tasks.conftest import host

    define(store, settings, functions, fun="test.ping", targets="role=web env=prod")
    clock, jobs = Clock(T0 + 60), Jobs(auto=True)
    # A host added after the definition is a target when the task fires.
    repo.write(store, "tester", [host("web3.example.com")], rules=Rules.from_config(config.load({})), mode="upsert")
    try:
        scheduler = make(store, settings, jobs, clock)
        scheduler.step(clock.now)
        scheduler.join()
        assert jobs.started[0].hostnames == ["web1.example.com", "web2.example.com", "web3.example.com"]
    finally:
        repo.remove(store, "tester", ["web3.example.com"], purge=True)


def test_history_keeps_runs_within_the_retention(store, settings, functions):
    define(store, settings, functions)
    with store.begin() as conn:
        task = definitions.get(conn, "job")
        for i in range(12):
            runs.insert(conn, task, f"k{i}", T0 + i, "schedule", "scheduler", "succeeded", T0 - 40 * 86400 + i * 86400 * 5)
    with store.begin() as conn:
        removed = runs.prune(conn, T0, keep_days=30, keep_runs=3)
    left = all_runs(store)
    assert removed == 9 and len(left) == 3
    assert all(r["created_at"] >= T0 - 30 * 86400 for r in left)


def test_output_is_cut_at_the_stated_size():
    text = "é" * 100
    cut = runs.trim(text, 51)
    assert cut.startswith("é" * 25) and cut.endswith("[... output cut at 51 bytes]")
    assert runs.trim("short", 51) == "short"


def test_the_changes_marker_moves_with_definitions_only(store, settings, functions):
    define(store, settings, functions)
    with store.connect() as conn:
        before = definitions.changes_marker(conn)
    with store.begin() as conn:
        assert definitions.advance(conn, definitions.get(conn, "job")["id"], T0 + 60, T0 + 120)
    with store.connect() as conn:
        assert definitions.changes_marker(conn) == before
        assert conn.execute(sa.select(defs_table.c.next_due)).scalar() == T0 + 120
