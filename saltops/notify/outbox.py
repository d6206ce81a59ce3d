"""The persistent notification outbox and the delivery log.

A row is written in the same transaction as the notification-log entry
that decided it (``saltops.alarms.persist``); a row stays ``pending`` until a
delivery succeeds, so one that failed, or was in flight when the master
stopped, is tried again after a restart.
"""

import sqlalchemy as sa

from saltops.alarms.schema import deliveries, outbox

PENDING = "pending"
SENT = "sent"
FAILED = "failed"


def enqueue(conn, channel, receiver, group_id, payload, now):
    result = conn.execute(outbox.insert().values(
        channel=channel, receiver=receiver, group_id=group_id, payload=payload, status=PENDING,
        attempts=0, created_at=now, next_attempt_at=now, sent_at=None, last_error=None))
    return result.inserted_primary_key[0]


def due(conn, now, limit=100, exclude=()):
    query = (sa.select(outbox.c.id, outbox.c.channel, outbox.c.payload, outbox.c.attempts)
             .where(outbox.c.status == PENDING, outbox.c.next_attempt_at <= now)
             .order_by(outbox.c.next_attempt_at, outbox.c.id).limit(limit + len(exclude)))
    return [row for row in conn.execute(query) if row.id not in exclude][:limit]


def record_attempt(conn, oid, channel, attempt, ok, error, duration_ms, now, next_at=None, give_up=False):
    """Log one attempt and move the row on: sent, retried later, or failed for good."""
    conn.execute(deliveries.insert().values(outbox_id=oid, channel=channel, attempt=attempt, ok=ok,
                                            error=(error or None) and error[:1024],
                                            duration_ms=int(duration_ms), ts=now))
    if oid is None:
        return
    if ok:
        values = {"status": SENT, "attempts": attempt, "sent_at": now, "last_error": None}
    elif give_up:
        values = {"status": FAILED, "attempts": attempt, "last_error": error[:1024]}
    else:
        values = {"attempts": attempt, "next_attempt_at": next_at, "last_error": error[:1024]}
    conn.execute(outbox.update().where(outbox.c.id == oid, outbox.c.status == PENDING).values(**values))


def counts(conn):
    rows = conn.execute(sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)).all()
    return {status: n for status, n in rows}


def listing(conn, status=None, limit=50):
    query = sa.select(outbox.c.id, outbox.c.channel, outbox.c.receiver, outbox.c.status, outbox.c.attempts,
                      outbox.c.created_at, outbox.c.sent_at, outbox.c.last_error).order_by(outbox.c.id.desc())
    if status:
        query = query.where(outbox.c.status == status)
    return [dict(row._mapping) for row in conn.execute(query.limit(int(limit)))]


def log(conn, outbox_id=None, limit=50):
    query = sa.select(deliveries).order_by(deliveries.c.id.desc()).limit(int(limit))
    if outbox_id is not None:
        query = query.where(deliveries.c.outbox_id == outbox_id)
    return [dict(row._mapping) for row in conn.execute(query)]


def prune(conn, cutoff):
    conn.execute(outbox.delete().where(outbox.c.status != PENDING, outbox.c.created_at < cutoff))
    conn.execute(deliveries.delete().where(deliveries.c.ts < cutoff))
