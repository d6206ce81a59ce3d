"""One deploy per app and env: a row in ``deploy_locks``, with stale-lock recovery.

The lock row names the deploy holding it; whether the holder is alive comes
from the deploy's ``owner`` (``host:pid`` of the process driving it) and its
``heartbeat_at``.  A paused deploy holds the lock with no owner until someone
resumes or aborts it.  A running deploy whose process is gone (same host: the
pid no longer exists; another host: no heartbeat for ``stale_after`` seconds)
has lost its runner: its lock may be taken over.
"""

import datetime
import os
import socket

import sqlalchemy as sa
from sqlalchemy import exc

from saltops.deploy import status_machine
from saltops.deploy.schema import locks, runs
from saltops.errors import Conflict
from saltops.store.audit import utcnow


def me():
    """The owner string of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def handoff_owner(jid):
    """The owner of a deploy recorded for the runner job ``jid`` to drive (``deploy.run background=True``).

    Such an owner is alive while its heartbeat is fresh (the creation time
    until the job claims it): a job that never starts leaves a deploy that
    turns stale after ``lock_stale_after`` seconds, to resume or abort.
    """
    return f"handoff:{jid}"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            # A zombie (killed, not yet reaped) is not running anything.
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def owner_alive(owner, heartbeat_at, stale_after, now=None):
    """Whether the process named by ``owner`` still drives its deploy."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return _pid_alive(int(pid))
    if heartbeat_at is None:
        return False
    now = now or utcnow()
    return (now - heartbeat_at) < datetime.timedelta(seconds=stale_after)


def holder(conn, app, env):
    """The deploy row holding the lock of ``app``/``env`` (a mapping) or ``None``."""
    row = conn.execute(
        sa.select(runs)
        .join(locks, locks.c.deploy_id == runs.c.id)
        .where(locks.c.app == app, locks.c.env == env)
    ).first()
    return dict(row._mapping) if row else None


def is_stale(run, stale_after, now=None):
    """A deploy that holds a lock but whose runner is gone (paused deploys are not stale)."""
    if run["status"] == status_machine.PAUSED or run["status"] in status_machine.TERMINAL:
        return False
    return not owner_alive(run["owner"], run["heartbeat_at"], stale_after, now)


def acquire(conn, app, env, deploy_id, stale_after):
    """Take the lock for ``deploy_id`` inside the caller's transaction.

    Returns the id of a stale deploy whose lock was taken over (marked
    ``interrupted``), or ``None``.  Raises :class:`Conflict` when another deploy
    holds it.
    """
    now = utcnow()
    try:
        # A duplicate key fails this statement only: MySQL and SQLite keep the
        # transaction, so no savepoint is needed.
        conn.execute(locks.insert().values(app=app, env=env, deploy_id=deploy_id, acquired_at=now))
        return None
    except exc.IntegrityError:
        pass
    current = holder(conn, app, env)
    if current is None:
        # The lock row points at a deploy that no longer exists: take it.
        row = conn.execute(sa.select(locks.c.deploy_id).where(locks.c.app == app, locks.c.env == env)).first()
        if row is None:
            raise Conflict(f"the deploy lock of {app}/{env} changed hands meanwhile; try again")
        _swap(conn, app, env, row.deploy_id, deploy_id, now)
        return None
    if current["status"] in status_machine.TERMINAL:
        _swap(conn, app, env, current["id"], deploy_id, now)
        return None
    if not is_stale(current, stale_after, now):
        state = (
            "paused, waiting for deploy.resume or deploy.abort"
            if current["status"] == status_machine.PAUSED
            else current["status"]
        )
        raise Conflict(
            f"deploy {current['id']} of {app} {current['version']} to {env} is in progress "
            f"({state}, started by {current['actor']}); only one deploy per app and env runs at a time"
        )
    _swap(conn, app, env, current["id"], deploy_id, now)
    conn.execute(
        runs.update()
        .where(runs.c.id == current["id"])
        .values(
            status=status_machine.INTERRUPTED,
            finished_at=now,
            owner=None,
            error=f"its runner ({current['owner']}) stopped; lock taken over by deploy {deploy_id}",
        )
    )
    return current["id"]


def _swap(conn, app, env, old_id, new_id, now):
    result = conn.execute(
        locks.update()
        .where(locks.c.app == app, locks.c.env == env, locks.c.deploy_id == old_id)
        .values(deploy_id=new_id, acquired_at=now)
    )
    if result.rowcount != 1:
        raise Conflict(f"the deploy lock of {app}/{env} changed hands meanwhile; try again")


def release(conn, app, env, deploy_id):
    """Drop the lock if ``deploy_id`` holds it."""
    conn.execute(locks.delete().where(locks.c.app == app, locks.c.env == env, locks.c.deploy_id == deploy_id))


def claim(conn, deploy_id, expected_owner=None, takeover_stale_after=None, handoff=None):
    """Make this process the owner of ``deploy_id`` (resume/abort of a paused or stale deploy).

    ``handoff``: the owner this process takes over from even while it is
    alive (the :func:`handoff_owner` of this process's own runner job).
    """
    run = conn.execute(sa.select(runs).where(runs.c.id == deploy_id)).first()
    if run is None:
        raise Conflict(f"deploy {deploy_id} does not exist")
    run = dict(run._mapping)
    driven = (
        run["owner"]
        and run["owner"] not in (me(), handoff)
        and run["status"] != status_machine.PAUSED
    )
    if driven and (takeover_stale_after is None or not is_stale(run, takeover_stale_after)):
        raise Conflict(
            f"deploy {deploy_id} is being driven by {run['owner']} (status {run['status']}); "
            "use deploy.abort to ask it to stop"
        )
    now = utcnow()
    result = conn.execute(
        runs.update()
        .where(
            runs.c.id == deploy_id,
            runs.c.owner.is_(None) if run["owner"] is None else runs.c.owner == run["owner"],
        )
        .values(owner=me(), heartbeat_at=now)
    )
    if result.rowcount != 1:
        raise Conflict(f"deploy {deploy_id} changed hands meanwhile; try again")
    return run
