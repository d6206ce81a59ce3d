"""What the ``task`` runner does beyond definitions: run now, and the views it shows."""

import datetime

from saltops.errors import Conflict, NotFound
from saltops.store import audit
from saltops.tasks import definitions, runs
from saltops.tasks.schedule import zone


def _iso(ts, tz="UTC"):
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, zone(tz)).isoformat(timespec="seconds")


def run_now(store, name, actor, now):
    """Queue a run of ``name`` now; the scheduler starts it within ``refresh`` seconds.

    Refused for a disabled task, and while a run of it already waits.
    """
    with store.begin() as conn:
        task = definitions.get(conn, name)
        if not task["enabled"]:
            raise Conflict(f"task {name!r} is disabled: task.enable it first")
        if any(run["status"] == "queued" for run in runs.active(conn, task["id"])):
            raise Conflict(f"a run of task {name!r} is already waiting to start")
        run_id = runs.insert(conn, task, runs.manual_key(task["id"]), now, "manual", actor, "queued", now)
        audit.record(conn, actor, "task.run_now", "task", name, None, {"run": run_id})
    return {"name": name, "run": run_id, "status": "queued"}


def task_view(row):
    """A definition as ``task.list`` shows it (times in the task's zone)."""
    schedule = {"cron": row["sched_expr"]} if row["sched_kind"] == "cron" else (
        {"every": f"{float(row['sched_expr']):g}s"} if row["sched_kind"] == "interval"
        else {"at": _iso(float(row["sched_expr"]), row["tz"])})
    view = {
        "name": row["name"],
        "kind": row["kind"],
        "fun": row["fun"],
        "args": row["args"],
        "kwarg": row["kwargs"],
        **schedule,
        "tz": row["tz"],
        "timeout": row["timeout"],
        "overlap": row["overlap"],
        "catch_up": row["catch_up"],
        "notify": row["notify"],
        "enabled": bool(row["enabled"]),
        "defined_by": row["defined_by"],
        "next_run": _iso(row["next_due"], row["tz"]) if row["enabled"] else None,
        "failing": bool(row.get("failing")),
    }
    if row["targets"]:
        view["targets"] = row["targets"]
    return view


def run_view(run):
    view = {
        "run": run["id"],
        "task": run["task_name"],
        "status": run["status"],
        "trigger": run["trigger"],
        "due": _iso(run["due_at"]),
        "started": _iso(run["started_at"]),
        "ended": _iso(run["finished_at"]),
        "retcode": run["retcode"],
        "defined_by": run["defined_by"],
        "triggered_by": run["triggered_by"],
    }
    for key in ("jid", "error", "output", "hosts"):
        if run.get(key):
            view[key] = run[key]
    return view


def list_tasks(store, name=None):
    with store.connect() as conn:
        rows = [definitions.get(conn, name)] if name else definitions.list_all(conn)
    return [task_view(row) for row in rows]


def history(store, name=None, limit=20, run=None):
    with store.connect() as conn:
        if run is not None:
            return [run_view(runs.get(conn, int(run)))]
        if name:
            try:
                definitions.get(conn, name)
            except NotFound:
                if not runs.history(conn, name, limit=1):
                    raise
        return [run_view(r) for r in runs.history(conn, name, limit)]
