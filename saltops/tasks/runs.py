"""The ``task_runs`` table: claims of due times, run states, results, history and pruning.

A run's life: ``queued`` (waiting for the task's previous run, overlap
``queue`` or ``kill``) or straight to ``running``; then ``succeeded``,
``failed``, ``timeout`` or ``killed``; ``skipped`` when it never started
(overlap ``skip``, or a missed due time with catch_up ``skip``);
``interrupted`` when the master driving it died (nothing is started again for
it: its job may have run).
"""

import json
import uuid

import sqlalchemy as sa

from saltops.errors import NotFound
from saltops.tasks.schema import runs as table

ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "failed", "timeout", "killed", "skipped", "interrupted")
# Outcomes that make a task failing (and raise its alarm).
FAILED = ("failed", "timeout", "interrupted")
TRUNCATED = "\n[... output cut at {limit} bytes]"


def trim(text, limit):
    """``text`` cut to ``limit`` bytes of UTF-8, marked when cut."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = json.dumps(text, sort_keys=True, default=str)
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", "ignore") + TRUNCATED.format(limit=limit)


def claim_key(task_id, due):
    return f"{task_id}:{due:.6f}"


def manual_key(task_id):
    return f"{task_id}:manual:{uuid.uuid4().hex}"


def insert(conn, task, key, due, trigger, triggered_by, status, now, owner=None, error=None):
    """Add a run of ``task`` (a definition row); returns its id.

    ``owner`` is the scheduler that claimed it (and drives it, once running).
    """
    running = status == "running"
    result = conn.execute(table.insert().values(
        task_id=task["id"], task_name=task["name"], claim_key=key, due_at=due, trigger=trigger,
        triggered_by=triggered_by, defined_by=task["defined_by"], status=status,
        owner=owner, heartbeat_at=now if running else None, kill_requested=False,
        created_at=now, started_at=now if running else None,
        finished_at=now if status in FINISHED else None, error=error,
    ))
    return result.inserted_primary_key[0]


def active(conn, task_id):
    """The task's queued and running runs, oldest first."""
    query = (sa.select(table).where(table.c.task_id == task_id, table.c.status.in_(ACTIVE))
             .order_by(table.c.id))
    return [dict(row) for row in conn.execute(query).mappings()]


def active_many(conn, task_ids):
    """``{task id: [queued and running runs, oldest first]}`` for ``task_ids``."""
    found = {}
    for start in range(0, len(task_ids), 500):
        query = (sa.select(table).where(table.c.task_id.in_(task_ids[start : start + 500]),
                                        table.c.status.in_(ACTIVE)).order_by(table.c.id))
        for row in conn.execute(query).mappings():
            found.setdefault(row["task_id"], []).append(dict(row))
    return found


def startable(conn):
    """The oldest queued run of every task that has no running run."""
    running = sa.select(table.c.task_id).where(table.c.status == "running")
    oldest = (sa.select(sa.func.min(table.c.id)).where(table.c.status == "queued", table.c.task_id.not_in(running))
              .group_by(table.c.task_id))
    return [dict(row) for row in conn.execute(sa.select(table).where(table.c.id.in_(oldest))).mappings()]


def start(conn, run_id, owner, now):
    """Take a queued run to ``running`` for ``owner``; False when another master took it first."""
    result = conn.execute(table.update().where(table.c.id == run_id, table.c.status == "queued")
                          .values(status="running", owner=owner, started_at=now, heartbeat_at=now))
    return result.rowcount == 1


def set_jid(conn, run_id, jid):
    conn.execute(table.update().where(table.c.id == run_id).values(jid=str(jid)[:32]))


def heartbeat(conn, run_ids, now):
    if run_ids:
        conn.execute(table.update().where(table.c.id.in_(list(run_ids)), table.c.status == "running")
                     .values(heartbeat_at=now))


def kills_requested(conn, run_ids):
    if not run_ids:
        return set()
    query = sa.select(table.c.id).where(table.c.id.in_(list(run_ids)), table.c.kill_requested.is_(True))
    return {row.id for row in conn.execute(query)}


def request_kill(conn, task_id):
    """Ask the owners of the task's running runs to kill them (overlap ``kill``)."""
    conn.execute(table.update().where(table.c.task_id == task_id, table.c.status == "running")
                 .values(kill_requested=True))


def finish(conn, run_id, status, now, retcode=None, hosts=None, output=None, error=None):
    """Record the end of a running run; False if it was not running (marked interrupted meanwhile)."""
    result = conn.execute(table.update().where(table.c.id == run_id, table.c.status == "running").values(
        status=status, finished_at=now, retcode=retcode, hosts=hosts, output=output, error=error))
    return result.rowcount == 1


def interrupt(conn, now, owner_prefix=None, stale_before=None, exclude=()):
    """Mark runs whose master died ``interrupted``; returns them.

    ``owner_prefix``: this master's earlier processes (found at start-up);
    ``stale_before``: any owner whose heartbeat is older than that.
    """
    clauses = []
    if owner_prefix:
        clauses.append(table.c.owner.like(owner_prefix.replace("%", r"\%") + "%"))
    if stale_before is not None:
        clauses.append(table.c.heartbeat_at < stale_before)
    if not clauses:
        return []
    query = sa.select(table).where(table.c.status == "running", sa.or_(*clauses))
    if exclude:
        query = query.where(table.c.id.not_in(list(exclude)))
    found = [dict(row) for row in conn.execute(query).mappings()]
    for run in found:
        conn.execute(table.update().where(table.c.id == run["id"], table.c.status == "running").values(
            status="interrupted", finished_at=now,
            error=f"the master driving this run ({run['owner']}) stopped before it ended; "
                  "it is not run again (the job may have run on its targets)"))
    return found


def history(conn, task_name=None, limit=20, status=None):
    """Runs, newest first."""
    query = sa.select(table).order_by(table.c.id.desc()).limit(max(1, min(int(limit), 1000)))
    if task_name:
        query = query.where(table.c.task_name == task_name)
    if status:
        query = query.where(table.c.status == status)
    return [dict(row) for row in conn.execute(query).mappings()]


def get(conn, run_id):
    row = conn.execute(sa.select(table).where(table.c.id == run_id)).mappings().first()
    if row is None:
        raise NotFound(f"no task run {run_id}")
    return dict(row)


def prune(conn, now, keep_days, keep_runs):
    """Delete finished runs older than ``keep_days`` and all but the newest ``keep_runs`` per task."""
    done = table.c.status.in_(FINISHED)
    removed = conn.execute(table.delete().where(done, table.c.created_at < now - keep_days * 86400)).rowcount
    crowded = conn.execute(sa.select(table.c.task_id).group_by(table.c.task_id)
                           .having(sa.func.count() > keep_runs)).all()
    for (task_id,) in crowded:
        cut = conn.execute(sa.select(table.c.id).where(table.c.task_id == task_id).order_by(table.c.id.desc())
                           .offset(keep_runs).limit(1)).scalar()
        if cut is not None:
            removed += conn.execute(table.delete().where(table.c.task_id == task_id, table.c.id <= cut,
                                                         done)).rowcount
    return removed
