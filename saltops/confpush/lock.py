"""One push per app and env: a row in ``confpush_locks``, taken over only from a dead push.

Whether the holder still runs is decided as for deploys
(:func:`saltops.deploy.lock.owner_alive`: same host, the pid; another host,
the heartbeat).  A push whose runner died keeps the lock until
``confpush.resume`` or ``confpush.abort`` finishes it, or the next push of
the app/env takes the lock over and marks it ``interrupted``.

A push recorded for a background runner job (``background=True``) is owned by
:func:`handoff_owner` of that job's jid: alive while its heartbeat is fresh,
so the lock holds across the hand-off, and taken over only by that job.
"""

import sqlalchemy as sa
from sqlalchemy import exc

from saltops.confpush import store as cstore
from saltops.confpush.schema import locks, pushes
from saltops.confpush.store import TERMINAL
from saltops.deploy.lock import handoff_owner, me, owner_alive
from saltops.errors import Conflict
from saltops.store.audit import utcnow

__all__ = ["acquire", "alive", "handoff_owner", "holder", "me", "release"]


def acquire(conn, app, env, push_id, stale_after):
    """Take the lock for ``push_id`` in the caller's transaction, or raise :class:`Conflict`."""
    now = utcnow()
    try:
        conn.execute(locks.insert().values(app=app, env=env, push_id=push_id, acquired_at=now))
        return None
    except exc.IntegrityError:
        pass
    held = conn.execute(sa.select(locks.c.push_id).where(locks.c.app == app, locks.c.env == env)).first()
    if held is None:
        raise Conflict(f"the push lock of {app}/{env} changed hands meanwhile; try again")
    holder = conn.execute(sa.select(pushes).where(pushes.c.id == held.push_id)).first()
    if holder is not None and holder.status not in TERMINAL:
        if owner_alive(holder.owner, holder.heartbeat_at, stale_after, now):
            raise Conflict(
                f"config push {holder.id} of {app}/{env} (set version {holder.set_version}, started by "
                f"{holder.actor}) is running; only one push per app and env runs at a time"
            )
        runner = holder.owner or "stopped"
        cstore.interrupt(conn, holder.id, f"its runner ({runner}) stopped; lock taken over by push {push_id}")
    result = conn.execute(
        locks.update()
        .where(locks.c.app == app, locks.c.env == env, locks.c.push_id == held.push_id)
        .values(push_id=push_id, acquired_at=now)
    )
    if result.rowcount != 1:
        raise Conflict(f"the push lock of {app}/{env} changed hands meanwhile; try again")
    return holder.id if holder is not None else None


def holder(conn, app, env):
    """The id of the push holding the lock of ``app``/``env``, or ``None``."""
    return conn.execute(sa.select(locks.c.push_id).where(locks.c.app == app, locks.c.env == env)).scalar()


def alive(push, stale_after):
    """Whether the process driving ``push`` (a row mapping of ``confpush_pushes``) still runs."""
    return owner_alive(push["owner"], push["heartbeat_at"], stale_after)


def release(conn, app, env, push_id):
    conn.execute(locks.delete().where(locks.c.app == app, locks.c.env == env, locks.c.push_id == push_id))
