"""The tickets' deadline check and periodic report as scheduled tasks, fired by the real task engine.

Salt's loaders and RunnerClient (no daemons): ``ticket.schedule`` defines the
tasks with :func:`saltops.tasks.definitions.ensure_runner_task`; the task
scheduler runs them in a child process, as the person who scheduled them.
"""

import getpass
import json
import os
import time

import pytest
import salt.config
import salt.loader
import sqlalchemy as sa

from saltops.bridge.taskjobs import job_starter
from saltops.notify.schema import outbox
from saltops.tasks import settings as task_settings
from saltops.tasks.driver import Scheduler
from tests.support import tickets_kit
from tests.support.hosts import host_record
from tests.support.refusals import assert_refused
from tests.support.task_runs import run_until_done

ME = os.environ.get("SUDO_USER") or getpass.getuser()
ORG = tickets_kit.ORG.replace("dan: {department: dev}", "dan: {department: dev, manager: olga, email: dan@x.org}") \
    + f"  {ME}: {{department: ops, manager: dan, roles: [ops]}}\n"
CHANNELS = {"mail": {"type": "smtp", "host": "127.0.0.1", "port": 9, "from": "so@x.org", "to": ["ops@x.org"]}}


pytestmark = pytest.mark.mysql


@pytest.fixture(scope="module")
def opts(tmp_path_factory, make_mysql_database):
    # MariaDB, as the task engine runs with it: the runner runs in a forked child beside the scheduler.
    root = tmp_path_factory.mktemp("tickettasks")
    (root / "cache" / "proc").mkdir(parents=True)
    o = salt.config.master_config(None)
    o.update({
        "cachedir": str(root / "cache"), "pki_dir": str(root / "pki"), "sock_dir": str(root / "sock"),
        "saltops": {"db_url": make_mysql_database("saltops_tkt").url, "notify": {"channels": CHANNELS},
                    "tasks": {"refresh": 0.2, "heartbeat": 0.2, "min_timeout": 2},
                    "tickets": {"notify": {"channels": ["mail"], "remind_after": "1s", "escalate_after": "2s"}}},
    })
    return o


@pytest.fixture(scope="module")
def runners(opts):
    runners = salt.loader.runner(opts, utils=salt.loader.utils(opts))
    path = os.path.join(opts["cachedir"], "org.yml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(ORG)
    assert runners["org.load"](path)["users"] == 7
    from saltops import config, runnerkit
    from saltops.cmdb import repo
    from saltops.cmdb.model import Rules

    repo.write(runnerkit.open_store(opts)[1], "tester", [host_record("web1.example.com")],
               rules=Rules.from_config(config.load({})), mode="upsert")
    assert runners["ticket.template_save"](text=tickets_kit.MAINT)["version"] == 1
    return runners


def test_the_deadline_check_and_the_report_are_tasks_fired_by_the_task_engine(opts, runners):
    from saltops import runnerkit

    store = runnerkit.open_store(opts)[1]
    defined = runners["ticket.schedule"](deadlines_every="1m", report_cron="0 8 * * 1", report_format="csv")
    assert defined["deadlines"]["fun"] == "ticket.check_deadlines" and defined["report"]["fun"] == "ticket.report"
    listed = {t["name"]: t for t in runners["task.list"]()}
    assert listed["tickets-deadlines"]["every"] == "60s" and listed["tickets-report"]["cron"] == "0 8 * * 1"
    assert runners["ticket.schedule"](deadlines_every="1m", report_format="csv")["deadlines"]["next_due"] == \
        defined["deadlines"]["next_due"]  # the same definitions: left alone

    ticket = runners["ticket.create"]("maint", host="web1.example.com", env="dev")
    assert ticket["waiting_for"] == ["dan"]
    with store.connect() as conn:  # the runner told dan at once
        assert [r.receiver for r in conn.execute(sa.select(outbox))] == ["ticket:dan"]
    time.sleep(2.5)  # past escalate_after (2 s)

    settings = task_settings.load(opts["saltops"])
    scheduler = Scheduler(store, settings, job_starter(opts, settings), master_id="func")
    scheduler.load()
    try:
        assert runners["task.run_now"]("tickets-deadlines")["status"] == "queued"
        run = run_until_done(scheduler, store, "tickets-deadlines", timeout=120)
        assert run["status"] == "succeeded", run.get("output")
        assert json.loads(run["output"])["escalated"] == [{"added": ["olga"], "approval": 1, "ticket": ticket["id"]}]
        assert run["triggered_by"] == ME
        assert runners["ticket.show"](ticket["id"])["waiting_for"] == ["dan", "olga"]
        assert runners["task.run_now"]("tickets-report")["status"] == "queued"
        report = run_until_done(scheduler, store, "tickets-report", timeout=120)
        assert report["status"] == "succeeded" and "template,count,in_approval" in report["output"]
    finally:
        scheduler.stop()


def test_only_operators_schedule_and_a_bad_format_is_refused(opts, runners, monkeypatch):
    assert_refused(runners["ticket.report"](format="xml"), "format must be one of table, csv, json")
    assert_refused(runners["ticket.schedule"](deadlines_every="often"), "often")
    before = {t["name"]: t for t in runners["task.list"]()}
    monkeypatch.setenv("SUDO_USER", "bob")  # the acting user, as sudo gives it
    assert_refused(runners["ticket.schedule"](deadlines_every="5m"),
                   "bob does not have the role 'ops': only operators schedule the tickets' tasks; "
                   "nothing was changed")
    assert {t["name"]: t for t in runners["task.list"]()} == before


def test_the_phone_page_engine_loads_and_declines_a_bad_configuration(opts):
    import copy

    assert "saltops_tickets.start" in salt.loader.engines(opts, {}, {}, {})
    bad = copy.deepcopy(opts)
    bad["saltops"]["tickets"]["web"] = {"listen_port": "eighty"}
    assert "saltops_tickets.start" not in salt.loader.engines(bad, {}, {}, {})


def test_the_new_runner_functions_have_cli_examples(runners):
    for name in ("check_deadlines", "schedule", "report"):
        assert "CLI Example:" in runners[f"ticket.{name}"].__doc__, name
