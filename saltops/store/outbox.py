"""Transactional outbox for Salt events.

A change and the event that announces it are written in one transaction;
:func:`flush` fires the pending events after the commit.  If the process dies
between commit and fire, the next flush (any runner call, or the engine) fires
what is left, so no committed change goes unannounced.
"""

import logging

import sqlalchemy as sa

from saltops.store.audit import utcnow
from saltops.store.schema import event_outbox

log = logging.getLogger(__name__)


def enqueue(conn, tag, data):
    """Queue an event inside the caller's transaction."""
    if not tag.startswith("saltops/"):
        raise ValueError(f"SaltOps event tags start with 'saltops/': {tag!r}")
    conn.execute(event_outbox.insert().values(tag=tag, data=data, created_at=utcnow(), sent_at=None))


def flush(store, fire, limit=500):
    """Fire pending events in order with ``fire(tag, data)``; return how many were sent.

    An event is marked sent only after ``fire`` returned, so a failure leaves
    it pending for the next flush (at-least-once delivery).
    """
    sent = 0
    with store.connect() as conn:
        pending = conn.execute(
            sa.select(event_outbox.c.id, event_outbox.c.tag, event_outbox.c.data)
            .where(event_outbox.c.sent_at.is_(None))
            .order_by(event_outbox.c.id)
            .limit(limit)
        ).all()
    for row in pending:
        try:
            fire(row.tag, row.data)
        except Exception as err:  # the bus may be down; keep the rest pending
            log.warning("could not fire %s: %s", row.tag, err)
            break
        with store.begin() as conn:
            conn.execute(
                event_outbox.update()
                .where(event_outbox.c.id == row.id, event_outbox.c.sent_at.is_(None))
                .values(sent_at=utcnow())
            )
        sent += 1
    return sent


def pending_count(store):
    with store.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(event_outbox).where(event_outbox.c.sent_at.is_(None))
        ).scalar()
