"""Failing tasks as alarms: sent to the alarm engine's Alertmanager webhook.

A task whose last run failed (``failed``, ``timeout``, ``interrupted``) is
an external alert ``alertname=TaskFailed`` with the labels ``task``,
``kind``, ``severity`` and ``notify`` (the task's receiver or route label):
the alarm engine groups, routes, silences and inhibits it like its own
alarms (see docs/tasks.md for a route on ``notify``).  The next successful
run sends it ``resolved``.  While it fires it is sent again every
``alarm_resend`` seconds, because the alarm engine resolves an external
alert it stops hearing about (Alertmanager's convention).  What is still to
send is kept on the definition (``alarm_pending``), so a restart or an
alarm engine that is down delays the alarm and loses nothing.
"""

import datetime
import json
import logging
import threading
import time
import urllib.error
import urllib.request

from saltops.tasks import definitions, runs

log = logging.getLogger(__name__)

ALERTNAME = "TaskFailed"


def _iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def payload(task, state, now, severity="warning", last_error=None):
    """An Alertmanager webhook body (version 4) for ``task`` in ``state`` (firing or resolved)."""
    labels = {"alertname": ALERTNAME, "task": task["name"], "kind": task["kind"], "severity": severity}
    if task.get("notify"):
        labels["notify"] = task["notify"]
    summary = f"scheduled task {task['name']} ({task['fun']}) failed"
    if last_error:
        summary += f": {last_error[:300]}"
    alert = {"status": state, "labels": labels,
             "annotations": {"summary": summary, "description": f"salt-run task.history name={task['name']}"},
             "startsAt": _iso(now)}
    if state == "resolved":
        alert["endsAt"] = _iso(now)
    return {"version": "4", "status": state, "alerts": [alert]}


def http_sender(url, token=None, timeout=5.0):
    """A ``send(body) -> bool`` that POSTs to the alarm engine's webhook."""

    state = {"failing": False}

    def send(body):
        data = json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                ok = 200 <= response.status < 300
        except (urllib.error.URLError, OSError, ValueError) as err:
            # One warning per outage of the alarm engine, not one per attempt.
            (log.debug if state["failing"] else log.warning)("task alarm not delivered to %s: %s", url, err)
            state["failing"] = True
            return False
        if ok and state["failing"]:
            log.info("task alarms are delivered to %s again", url)
        state["failing"] = not ok
        return ok

    return send


def last_error(conn, task_name):
    """The error (or output) of the task's latest failed run, for the alarm's summary."""
    for run in runs.history(conn, task_name, limit=5):
        if run["status"] in runs.FAILED:
            return run["error"] or run["output"]
    return None


def send_pending(store, send, now, resend, severity="warning"):
    """Send every alarm state due to the alarm engine; returns how many were taken."""
    with store.connect() as conn:
        due = definitions.alarms_to_send(conn, now, resend)
        errors = {task["id"]: last_error(conn, task["name"]) for task in due if task["alarm_pending"] == "firing"}
    taken = 0
    for task in due:
        state = task["alarm_pending"]
        if not send(payload(task, state, now, severity, errors.get(task["id"]))):
            break  # the alarm engine is away or refuses: the rest waits for the next pass
        with store.begin() as conn:
            definitions.alarm_sent(conn, task["id"], state, now)
        taken += 1
    return taken


class AlarmLoop:
    """A thread sending task alarms every ``interval`` seconds (HTTP never blocks the scheduler)."""

    def __init__(self, store, send, settings, stopping, clock=time.time):
        self.store = store
        self.send = send
        self.settings = settings
        self.stopping = stopping
        self.clock = clock
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self._loop, name="saltops-task-alarms", daemon=True)
        self.thread.start()
        return self

    def _loop(self):
        while not self.stopping.wait(self.settings["refresh"]):
            try:
                send_pending(self.store, self.send, self.clock(), self.settings["alarm_resend"],
                             self.settings["alarm_severity"])
            except Exception as err:  # noqa: BLE001  (the database is away: next time)
                log.warning("task alarms not sent: %s", err)
