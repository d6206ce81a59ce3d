"""A failing task becomes an alarm of the real alarm pipeline (grouped, routed, silenceable), and resolves."""

import threading
import time

import pytest
import yaml

from saltops.alarms import query, silence
from saltops.alarms.service import AlarmService
from saltops.bridge.taskjobs import job_starter
from saltops.tasks import alarm, control
from saltops.tasks import settings as task_settings
from saltops.tasks.driver import Scheduler
from tests.support.alarm_receivers import Receivers, channel_config, free_port

RULES = {
    "rules": [{"name": "DiskFull", "beacon": "diskusage", "field": "diskusage", "threshold": 90}],
    "route": {"receiver": "ops", "group_by": ["alertname"], "group_wait": "0.2s", "group_interval": "0.5s",
              "repeat_interval": "1h",
              "routes": [{"matchers": ['notify="dba"'], "receiver": "dba"}]},
    "receivers": {"ops": {"channels": ["hook"]}, "dba": {"channels": ["wecom"]}},
}
TOKEN = "t0ken-for-the-task-alarms"


@pytest.fixture
def receivers():
    r = Receivers().start()
    yield r
    r.stop()


@pytest.fixture
def alarm_service(opts, store, receivers, tmp_path):
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump(RULES))
    port = free_port()
    svc = AlarmService({"alarms": {"rules_file": str(rules_file), "listen_port": port, "tick": 0.1,
                                   "webhook_token": TOKEN, "cmdb_labels": False},
                        "notify": {"channels": channel_config(receivers)}}, store)
    svc.start()
    loop = threading.Thread(target=svc.run, daemon=True)
    loop.start()
    yield svc, f"http://127.0.0.1:{port}/api/v1/alertmanager"
    svc.stopping.set()
    loop.join(10)
    svc.stop()


def finish(scheduler, store, name, count, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        scheduler.step(time.time())
        done = [r for r in control.history(store, name) if r["status"] not in ("queued", "running")]
        if len(done) >= count:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(control.history(store, name))


def firing(store, task):
    with store.connect() as conn:
        return [a for a in query.list_alarms(conn, "firing", alertname="TaskFailed") if a["labels"]["task"] == task]


def wait_for(check, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    return check()


def test_a_failing_task_fires_an_alarm_routed_by_notify_and_the_next_success_resolves_it(
        opts, runners, store, receivers, alarm_service):
    _svc, url = alarm_service
    settings = task_settings.load(opts["saltops"])
    scheduler = Scheduler(store, settings, job_starter(opts, settings), master_id="func")
    scheduler.load()
    send = alarm.http_sender(url, TOKEN)
    runners["task.add"]("nightly-report", "alarm.list", every="1h", kwarg={"state": "burning"}, notify="dba")
    runners["task.run_now"]("nightly-report")
    assert finish(scheduler, store, "nightly-report", 1)["status"] == "failed"
    # A wrong token is refused by the alarm engine: the alarm stays pending and is sent later.
    assert alarm.send_pending(store, alarm.http_sender(url, "wrong"), time.time(), 60) == 0
    assert alarm.send_pending(store, send, time.time(), 60) == 1
    [fired] = wait_for(lambda: firing(store, "nightly-report"))
    assert fired["labels"]["notify"] == "dba" and fired["labels"]["severity"] == "warning"
    assert "state must be" in fired["annotations"]["summary"]
    [note] = receivers.wait("wecom", 1)  # routed to the dba receiver by the notify label
    assert "TaskFailed" in note["body"]["markdown"]["content"]
    assert not receivers.of("hook")
    # Fixed: the next run succeeds and the alarm resolves.
    runners["task.update"]("nightly-report", kwarg={"state": "all"})
    runners["task.run_now"]("nightly-report")
    assert finish(scheduler, store, "nightly-report", 2)["status"] == "succeeded"
    assert alarm.send_pending(store, send, time.time(), 60) == 1
    assert wait_for(lambda: not firing(store, "nightly-report"))
    assert wait_for(lambda: len(receivers.of("wecom")) >= 2)
    assert "RESOLVED" in receivers.of("wecom")[-1]["body"]["markdown"]["content"].upper()
    scheduler.stop()


def test_a_silenced_task_alarm_fires_without_a_notification(opts, runners, store, receivers, alarm_service):
    svc, url = alarm_service
    settings = task_settings.load(opts["saltops"])
    scheduler = Scheduler(store, settings, job_starter(opts, settings), master_id="func")
    scheduler.load()
    with store.begin() as conn:
        silence.add(conn, "bob", ['alertname="TaskFailed"', 'task="noisy"'], time.time() + 3600, "known broken")
    svc.reload_silences(force=True)
    runners["task.add"]("noisy", "alarm.list", every="1h", kwarg={"state": "burning"})
    runners["task.add"]("loud", "alarm.list", every="1h", kwarg={"state": "burning"})
    runners["task.run_now"]("noisy")
    runners["task.run_now"]("loud")
    finish(scheduler, store, "noisy", 1)
    finish(scheduler, store, "loud", 1)
    assert alarm.send_pending(store, alarm.http_sender(url, TOKEN), time.time(), 60) == 2
    assert wait_for(lambda: firing(store, "noisy") and firing(store, "loud"))
    [note] = receivers.wait("hook", 1)
    time.sleep(1.5)  # two group intervals: a notification for the silenced alarm would have come
    tasks_told = {a["labels"]["task"] for n in receivers.of("hook") for a in n["body"]["alerts"]}
    assert tasks_told == {"loud"}
    assert note["body"]["groupLabels"] == {"alertname": "TaskFailed"}
    scheduler.stop()
