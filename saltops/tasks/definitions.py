"""The ``task_defs`` table: adding, changing, removing and listing task definitions.

Every change is checked by :func:`saltops.tasks.spec.check` first and saved
in one transaction with its audit row, so a refused change leaves nothing
behind.  The scheduler's bookkeeping on a definition (the next due time it
claims, whether the task is failing, the alarm still to send) goes through
the functions at the end of this module.
"""

import sqlalchemy as sa

from saltops.errors import Conflict, NotFound, ValidationError
from saltops.store import audit
from saltops.tasks import spec, targets
from saltops.tasks.schema import definitions as table

SCHEDULE_FIELDS = ("cron", "every", "at")


def _public(row):
    """A definition as the runner shows it and the audit log keeps it."""
    row = dict(row)
    return {key: row[key] for key in ("name", "kind", "fun", "args", "kwargs", "targets", "sched_kind", "sched_expr",
                                      "tz", "timeout", "overlap", "catch_up", "notify", "enabled", "defined_by")}


def _fields_of(row):
    """The caller's fields a stored definition stands for (the base of an update)."""
    fields = {key: row[key] for key in ("fun", "args", "kwargs", "targets", "tz", "timeout", "overlap", "catch_up",
                                        "notify", "enabled")}
    key = {"cron": "cron", "interval": "every", "once": "at"}[row["sched_kind"]]
    fields[key] = row["sched_expr"] if key == "cron" else float(row["sched_expr"])
    return fields


def _checker(conn, settings, now, check_function):
    def resolve_targets(filters):
        return targets.resolve(conn, filters)

    return lambda name, fields: spec.check(name, fields, settings, now, check_function, resolve_targets)


def get(conn, name):
    row = conn.execute(sa.select(table).where(table.c.name == name)).mappings().first()
    if row is None:
        raise NotFound(f"no task named {name!r}")
    return dict(row)


def list_all(conn, enabled=None):
    query = sa.select(table).order_by(table.c.name)
    if enabled is not None:
        query = query.where(table.c.enabled == bool(enabled))
    return [dict(row) for row in conn.execute(query).mappings()]


def add(store, name, fields, actor, settings, now, check_function):
    """Define a task; :class:`Conflict` when the name is taken, :class:`ValidationError` on bad input."""
    unknown = sorted(set(fields) - set(spec.FIELDS))
    if unknown:
        raise ValidationError(f"task {name!r} not saved", [f"unknown field(s): {', '.join(unknown)}"])
    with store.begin() as conn:
        values = _checker(conn, settings, now, check_function)(name, fields)
        if conn.execute(sa.select(table.c.id).where(table.c.name == name)).first() is not None:
            raise Conflict(f"a task named {name!r} exists already (task.update changes it)")
        schedule = spec.schedule_of_row(values)
        values.update(defined_by=actor, created_at=now, updated_at=now, failing=False, alarm_pending=None,
                      alarm_sent_at=None, next_due=schedule.next_after(now) if values["enabled"] else None)
        try:
            conn.execute(table.insert().values(**values))
        except sa.exc.IntegrityError:
            raise Conflict(f"a task named {name!r} exists already (task.update changes it)") from None
        audit.record(conn, actor, "task.add", "task", name, None, _public(values))
    return _public(values) | {"next_due": values["next_due"]}


def update(store, name, changes, actor, settings, now, check_function):
    """Change fields of a task (checked as a whole); the schedule restarts from ``now`` if it changed."""
    unknown = sorted(set(changes) - set(spec.FIELDS))
    if unknown:
        raise ValidationError(f"task {name!r} not saved", [f"unknown field(s): {', '.join(unknown)}"])
    if not changes:
        raise ValidationError(f"task {name!r} not saved", ["nothing to change"])
    with store.begin() as conn:
        row = get(conn, name)
        fields = _fields_of(row)
        if any(changes.get(k) not in (None, "") for k in SCHEDULE_FIELDS):
            for key in SCHEDULE_FIELDS:
                fields.pop(key, None)
        if changes.get("targets") == "":
            changes = dict(changes, targets=None)
        fields.update(changes)
        values = _checker(conn, settings, now, check_function)(name, fields)
        new_schedule = (values["sched_kind"], values["sched_expr"], values["tz"]) != (
            row["sched_kind"], row["sched_expr"], row["tz"])
        if not new_schedule:
            values["anchor"] = row["anchor"]
        if not values["enabled"]:
            values["next_due"] = None
        elif new_schedule or not row["enabled"] or row["next_due"] is None:
            values["next_due"] = spec.schedule_of_row(values).next_after(now)
        values["updated_at"] = now
        conn.execute(table.update().where(table.c.id == row["id"]).values(**values))
        after = dict(row, **values)
        audit.record(conn, actor, "task.update", "task", name, _public(row), _public(after))
    return _public(after) | {"next_due": after["next_due"]}


def remove(store, name, actor):
    """Delete a task's definition (its run history stays until pruned)."""
    with store.begin() as conn:
        row = get(conn, name)
        conn.execute(table.delete().where(table.c.id == row["id"]))
        audit.record(conn, actor, "task.remove", "task", name, _public(row), None)
    return _public(row)


def set_enabled(store, name, enabled, actor, now):
    """Enable (the schedule resumes from ``now``: no catch-up for the disabled time) or disable a task."""
    with store.begin() as conn:
        row = get(conn, name)
        if bool(row["enabled"]) == bool(enabled):
            return _public(row) | {"next_due": row["next_due"], "changed": False}
        next_due = spec.schedule_of_row(row).next_after(now) if enabled else None
        conn.execute(table.update().where(table.c.id == row["id"])
                     .values(enabled=bool(enabled), next_due=next_due, updated_at=now))
        after = dict(row, enabled=bool(enabled), next_due=next_due)
        audit.record(conn, actor, "task.enable" if enabled else "task.disable", "task", name, _public(row),
                     _public(after))
    return _public(after) | {"next_due": next_due, "changed": True}


def ensure_runner_task(store, name, fun, kwargs, actor, settings, now, check_function, cron=None, every=None,
                       timeout=None, overlap="skip", catch_up="once", notify=None):
    """Define (or bring up to date) a periodic runner call owned by another part of SaltOps.

    The tickets' deadline check registers itself this way at start.  A
    definition that already matches is left alone (no audit row, the
    schedule keeps its phase); one that differs is updated; whether a
    person disabled it is kept.  Returns the definition.
    """
    fields = {"fun": fun, "kwargs": dict(kwargs or {}), "cron": cron, "every": every, "timeout": timeout,
              "overlap": overlap, "catch_up": catch_up, "notify": notify}
    with store.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.name == name)).mappings().first()
    if row is None:
        return add(store, name, fields, actor, settings, now, check_function)
    wanted = spec.check(name, dict(fields, enabled=row["enabled"]), settings, now, check_function, lambda _f: [])
    same = all(wanted[k] == row[k] for k in ("kind", "fun", "args", "kwargs", "sched_kind", "sched_expr", "tz",
                                              "timeout", "overlap", "catch_up", "notify"))
    if same:
        return _public(row) | {"next_due": row["next_due"]}
    changes = {k: v for k, v in fields.items() if v is not None}
    changes["targets"] = ""
    for key in SCHEDULE_FIELDS:
        changes.setdefault(key, None)
    return update(store, name, changes, actor, settings, now, check_function)


# -- the scheduler's bookkeeping --------------------------------------------------------------------

def changes_marker(conn):
    """``(count, newest change)`` of the definitions: when it moves, an engine reloads them."""
    count, newest = conn.execute(sa.select(sa.func.count(), sa.func.max(table.c.updated_at))).one()
    return int(count), newest


def advance(conn, task_id, due, next_due):
    """Move an enabled task's next due time from ``due`` to ``next_due``; False if someone else did.

    The conditional UPDATE takes the row lock: of two masters claiming the
    same due time, one changes the row and the other finds ``next_due``
    moved (zero rows), in MariaDB and SQLite alike.
    """
    result = conn.execute(table.update()
                          .where(table.c.id == task_id, table.c.enabled.is_(True), table.c.next_due == due)
                          .values(next_due=next_due))
    return result.rowcount == 1


def load_one(conn, task_id):
    row = conn.execute(sa.select(table).where(table.c.id == task_id)).mappings().first()
    return dict(row) if row is not None else None


def record_outcome(conn, task_id, failed):
    """Remember whether the task's last run failed; a change asks for an alarm (or its resolution)."""
    row = conn.execute(sa.select(table.c.failing).where(table.c.id == task_id)).first()
    if row is None:
        return
    if failed:
        conn.execute(table.update().where(table.c.id == task_id)
                     .values(failing=True, alarm_pending="firing", alarm_sent_at=None))
    elif row.failing:
        conn.execute(table.update().where(table.c.id == task_id)
                     .values(failing=False, alarm_pending="resolved", alarm_sent_at=None))


def alarms_to_send(conn, now, resend):
    """Definitions whose alarm state the alarm engine must hear (again)."""
    query = sa.select(table).where(
        table.c.alarm_pending.is_not(None),
        sa.or_(table.c.alarm_sent_at.is_(None), table.c.alarm_sent_at <= now - resend),
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def alarm_sent(conn, task_id, state, now):
    """The alarm engine took ``state``: a resolution is done, a firing alarm is resent later."""
    values = {"alarm_sent_at": now}
    if state == "resolved":
        values["alarm_pending"] = None
    conn.execute(table.update().where(table.c.id == task_id, table.c.alarm_pending == state).values(**values))
