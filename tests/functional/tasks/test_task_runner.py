"""The task runner and the scheduler's runner jobs through Salt's loaders and RunnerClient."""

import datetime
import time

from saltops.bridge.taskjobs import job_starter
from saltops.tasks import settings as task_settings
from saltops.tasks.driver import Scheduler
from tests.support.refusals import assert_refused
from tests.support.task_runs import run_until_done


def test_runner_functions_are_loaded_with_docs(runners):
    for name in ("add", "update", "remove", "enable", "disable", "list", "run_now", "history"):
        assert "CLI Example:" in runners[f"task.{name}"].__doc__, name


def test_define_change_and_remove_a_task(runners):
    added = runners["task.add"]("report", "alarm.list", every="10m", kwarg={"state": "all"}, notify="ops")
    assert added["kind"] == "runner"
    assert datetime.datetime.fromisoformat(added["next_due"]).timestamp() > time.time() + 590
    [listed] = runners["task.list"]()
    assert listed["name"] == "report" and listed["every"] == "600s" and listed["next_run"]
    changed = runners["task.update"]("report", cron="0 3 * * *", tz="Asia/Shanghai", overlap="queue")
    assert changed["sched_kind"] == "cron" and changed["overlap"] == "queue"
    assert runners["task.list"](name="report")[0]["next_run"].endswith("T03:00:00+08:00")
    assert runners["task.disable"]("report")["enabled"] is False
    assert runners["task.list"]()[0]["next_run"] is None
    assert runners["task.enable"]("report")["enabled"] is True
    assert runners["task.remove"]("report")["name"] == "report"
    assert runners["task.list"]() == []


def test_bad_definitions_are_refused_with_the_reason_and_nothing_saved(runners):
    assert_refused(runners["task.add"]("r1", "alarm.list", cron="* * *"), "must have 5 fields")
    assert_refused(runners["task.add"]("r2", "alarm.nonesuch", every="1m"), "unknown runner function 'alarm.nonesuch'")
    assert_refused(runners["task.add"]("r3", "alarm.list", every="1m", kwarg={"colour": "red"}),
                   "takes no argument.*colour")
    assert_refused(runners["task.add"]("r4", "alarm.list", every="1m", timeout=1), "out of range")
    assert_refused(runners["task.add"]("r5", "test.ping", every="1m", targets="role=web env=prod"),
                   "match no host in the CMDB")
    assert_refused(runners["task.add"]("r6", "alarm.list", every="1m", colour="red"), "unknown argument.*colour")
    assert_refused(runners["task.update"]("nonesuch", every="1m"), "no task named 'nonesuch'")
    assert runners["task.list"]() == []


def test_the_scheduler_runs_runner_calls_through_salt_and_records_the_outcome(opts, runners, store):
    settings = task_settings.load(opts["saltops"])
    scheduler = Scheduler(store, settings, job_starter(opts, settings), master_id="func")
    scheduler.load()
    runners["task.add"]("args", "test.arg", every="1h", arg=["a"], kwarg={"colour": "blue"})
    runners["task.add"]("refused", "alarm.list", every="1h", kwarg={"state": "burning"})
    runners["task.add"]("slow", "test.sleep", every="1h", kwarg={"s_time": 60}, timeout=2)
    for name in ("args", "refused", "slow"):
        assert runners["task.run_now"](name)["status"] == "queued"
    ok = run_until_done(scheduler, store, "args")
    assert ok["status"] == "succeeded" and ok["retcode"] == 0 and ok["trigger"] == "manual"
    assert '"colour": "blue"' in ok["output"] and ok["triggered_by"] == ok["defined_by"]
    refused = run_until_done(scheduler, store, "refused")
    assert refused["status"] == "failed" and refused["retcode"] == 1 and "state must be" in refused["output"]
    slow = run_until_done(scheduler, store, "slow")
    assert slow["status"] == "timeout" and "timed out after 2 s" in slow["error"]
    started, ended = (time.mktime(time.strptime(slow[k][:19], "%Y-%m-%dT%H:%M:%S")) for k in ("started", "ended"))
    assert ended - started < 30  # the runner process was stopped, not waited for
    history = runners["task.history"](name="args")
    assert history[0]["run"] == ok["run"]
    assert runners["task.history"](run=refused["run"])[0]["status"] == "failed"
    scheduler.stop()


def test_the_engine_loads_and_declines_a_bad_configuration(opts):
    import copy

    import salt.loader

    assert "saltops_tasks.start" in salt.loader.engines(opts, {}, {}, {})
    bad = copy.deepcopy(opts)
    bad["saltops"]["tasks"] = {"refresh": -1}
    assert "saltops_tasks.start" not in salt.loader.engines(bad, {}, {}, {})
