"""The notification queue (table ``notify_outbox``) and the delivery log.

A row is written in the same transaction as the notification-log entry
that decided it (by the alarm pipeline's write-behind); a row stays
``pending`` until a delivery succeeds, so one that failed, or was in flight
when the master stopped, is tried again after a restart.

An attempt is *claimed* before anything is sent (:func:`claim`, committed on
its own): the row becomes ``sending``, its attempt counter goes up and
``next_attempt_at`` becomes the end of the claim's lease.  Only the claimant
records the outcome (:func:`record_attempt`).  So each attempt sends at most
once: a claim that cannot be committed sends nothing, and a row whose
outcome cannot be recorded is not due again before its lease ends.  A row
still ``sending`` after its lease belongs to a process that stopped (or lost
its database) between claiming and recording; the next claim logs that
attempt as "outcome not recorded" and counts it as one attempt.
"""

import collections

import sqlalchemy as sa

from saltops.notify import redact
from saltops.notify.schema import deliveries, outbox

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
STATUSES = (PENDING, SENDING, SENT, FAILED)

ERROR_CHARS = 1024

# What a claim hands the worker: the attempt number it owns.
Claim = collections.namedtuple("Claim", "attempt lost")


def enqueue(conn, channel, receiver, group_id, payload, now):
    result = conn.execute(outbox.insert().values(
        channel=channel, receiver=receiver, group_id=group_id, payload=payload, status=PENDING,
        attempts=0, created_at=now, next_attempt_at=now, sent_at=None, last_error=None))
    return result.inserted_primary_key[0]


def due(conn, now, limit=100, exclude=()):
    """Rows to try now: pending ones whose time has come, and claims whose lease ran out."""
    query = (sa.select(outbox.c.id, outbox.c.channel, outbox.c.payload, outbox.c.attempts)
             .where(outbox.c.status.in_((PENDING, SENDING)), outbox.c.next_attempt_at <= now)
             .order_by(outbox.c.next_attempt_at, outbox.c.id).limit(limit + len(exclude)))
    return [row for row in conn.execute(query) if row.id not in exclude][:limit]


def claim(conn, oid, now, lease, max_attempts):
    """Take the next attempt of row ``oid``; a :class:`Claim`, or None when it is not ours to send.

    Commit the caller's transaction before sending.  The update is
    conditional on the row being exactly as read, so of two workers (or two
    masters) racing for a row, one gets it.  A row whose attempts ran out
    while its outcomes went unrecorded fails here, unsent.
    """
    columns = (outbox.c.channel, outbox.c.status, outbox.c.attempts, outbox.c.next_attempt_at)
    row = conn.execute(sa.select(*columns).where(outbox.c.id == oid)).first()
    if row is None or row.status not in (PENDING, SENDING) or row.next_attempt_at > now:
        return None
    lost = row.status == SENDING
    if lost and row.attempts >= max_attempts:
        error = (f"gave up after {row.attempts} attempts; the outcome of the last one was never recorded "
                 f"(the process stopped, or the database could not be written, while it was in flight)")
        values = {"status": FAILED, "last_error": error}
        next_attempt = None
    else:
        next_attempt = row.attempts + 1
        values = {"status": SENDING, "attempts": next_attempt, "next_attempt_at": now + lease}
    # Every claim raises ``attempts`` and every record changes ``status``: a row that still has
    # both as read has not been taken by anyone else in between.
    result = conn.execute(outbox.update().values(**values).where(
        outbox.c.id == oid, outbox.c.status == row.status, outbox.c.attempts == row.attempts))
    if result.rowcount != 1:
        return None
    if lost:
        conn.execute(deliveries.insert().values(
            outbox_id=oid, channel=row.channel, attempt=row.attempts, ok=False, duration_ms=0, ts=now,
            error="outcome not recorded: the claim's lease ran out (the process stopped, or the database "
                  "could not be written, after the attempt was claimed); it may or may not have been sent"))
    return None if next_attempt is None else Claim(next_attempt, lost)


def record_attempt(conn, oid, channel, attempt, ok, error, duration_ms, now, next_at=None, give_up=False):
    """Log one attempt and move the row on: sent, retried later, or failed for good.

    The row changes only while it is still this attempt's claim (a claim whose
    lease ran out may have been taken over).  ``oid`` None logs a delivery
    that has no outbox row (``alarm.test``).  Error text is scrubbed of URL
    query strings and credentials before it is stored.
    """
    error = redact.scrub(error)
    stored = (error or None) and error[:ERROR_CHARS]
    conn.execute(deliveries.insert().values(outbox_id=oid, channel=channel, attempt=attempt, ok=ok,
                                            error=stored, duration_ms=int(duration_ms), ts=now))
    if oid is None:
        return True
    if ok:
        values = {"status": SENT, "sent_at": now, "last_error": None}
    elif give_up:
        values = {"status": FAILED, "last_error": stored}
    else:
        values = {"status": PENDING, "next_attempt_at": next_at, "last_error": stored}
    result = conn.execute(outbox.update().where(
        outbox.c.id == oid, outbox.c.status == SENDING, outbox.c.attempts == attempt).values(**values))
    return result.rowcount == 1


def counts(conn):
    rows = conn.execute(sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)).all()
    return {status: n for status, n in rows}


def listing(conn, status=None, limit=50):
    query = sa.select(outbox.c.id, outbox.c.channel, outbox.c.receiver, outbox.c.status, outbox.c.attempts,
                      outbox.c.created_at, outbox.c.sent_at, outbox.c.last_error).order_by(outbox.c.id.desc())
    if status:
        query = query.where(outbox.c.status == status)
    # Scrubbed again on the way out: rows stored by an older version may still hold a secret.
    return [dict(row._mapping, last_error=redact.scrub(row.last_error))
            for row in conn.execute(query.limit(int(limit)))]


def log(conn, outbox_id=None, limit=50):
    query = sa.select(deliveries).order_by(deliveries.c.id.desc()).limit(int(limit))
    if outbox_id is not None:
        query = query.where(deliveries.c.outbox_id == outbox_id)
    return [dict(row._mapping, error=redact.scrub(row.error)) for row in conn.execute(query)]


def prune(conn, cutoff):
    conn.execute(outbox.delete().where(outbox.c.status.in_((SENT, FAILED)), outbox.c.created_at < cutoff))
    conn.execute(deliveries.delete().where(deliveries.c.ts < cutoff))
