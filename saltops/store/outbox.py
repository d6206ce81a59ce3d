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


# Built once: SQLAlchemy then reuses its compiled form without walking a new statement per event.
_INSERT = event_outbox.insert()


def enqueue(conn, tag, data):
    """Queue an event inside the caller's transaction."""
    if not tag.startswith("saltops/"):
        raise ValueError(f"SaltOps event tags start with 'saltops/': {tag!r}")
    conn.execute(_INSERT, {"tag": tag, "data": data, "created_at": utcnow(), "sent_at": None})


def flush(store, fire, limit=500, prefix=None, raise_errors=False):
    """Fire pending events in order with ``fire(tag, data)``; return how many were sent.

    The one place that moves the outbox onto the master bus (the CMDB, deploys
    and the alarm engine all call it).  ``prefix`` limits the round to tags
    starting with it (the alarm engine fires only its own).  Events are marked
    sent once ``fire`` returned, in one update at the end of the round; the
    first event ``fire`` refuses ends the round, the ones before it are marked,
    and the error is logged and swallowed, or raised with ``raise_errors``.
    Delivery is at least once: a process that dies mid-round fires the
    unmarked ones again.
    """
    query = (
        sa.select(event_outbox.c.id, event_outbox.c.tag, event_outbox.c.data)
        .where(event_outbox.c.sent_at.is_(None))
        .order_by(event_outbox.c.id)
        .limit(limit)
    )
    if prefix:
        query = query.where(event_outbox.c.tag.startswith(prefix, autoescape=True))
    with store.connect() as conn:
        pending = conn.execute(query).all()
    fired = []
    try:
        for row in pending:
            fire(row.tag, row.data)
            fired.append(row.id)
    except Exception as err:  # the bus may be down: the rest stays pending
        if raise_errors:
            raise
        log.warning("could not fire %s: %s", pending[len(fired)].tag, err)
    finally:
        if fired:
            with store.begin() as conn:
                conn.execute(
                    event_outbox.update()
                    .where(event_outbox.c.id.in_(fired), event_outbox.c.sent_at.is_(None))
                    .values(sent_at=utcnow())
                )
    return len(fired)


def pending_count(store):
    with store.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(event_outbox).where(event_outbox.c.sent_at.is_(None))
        ).scalar()
