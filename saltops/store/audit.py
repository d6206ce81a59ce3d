"""The audit log: who changed what, when, from what to what.

Every write in SaltOps records one row here in the same transaction as the
change, so a change without its audit row cannot be committed.
"""

import datetime

import sqlalchemy as sa

from saltops.store.schema import audit_log


def utcnow():
    """Naive UTC timestamp (both backends store DATETIME without a zone)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)


def record(conn, actor, action, object_type, object_id, before=None, after=None, version=None):
    """Add one audit row inside the caller's transaction."""
    record_many(conn, actor, action, object_type, [(object_id, before, after)], version)


def record_many(conn, actor, action, object_type, items, version=None):
    """Add one audit row per ``(object_id, before, after)`` inside the caller's transaction."""
    if not actor:
        raise ValueError("an audited change needs an actor")
    now = utcnow()
    rows = [
        {
            "ts": now,
            "actor": str(actor)[:128],
            "action": action,
            "object_type": object_type,
            "object_id": str(object_id)[:255],
            "before": before,
            "after": after,
            "version": version,
        }
        for object_id, before, after in items
    ]
    # Batches keep a 100k-host import within every driver's packet limits.
    for start in range(0, len(rows), 2000):
        conn.execute(audit_log.insert(), rows[start : start + 2000])


def history(conn, object_type=None, object_id=None, actor=None, since=None, limit=100):
    """Audit rows, newest first, filtered by object, actor and time."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(int(limit))
    if object_type:
        query = query.where(audit_log.c.object_type == object_type)
    if object_id:
        query = query.where(audit_log.c.object_id == str(object_id))
    if actor:
        query = query.where(audit_log.c.actor == actor)
    if since:
        query = query.where(audit_log.c.ts >= since)
    rows = []
    for row in conn.execute(query).mappings():
        item = dict(row)
        item["ts"] = item["ts"].isoformat() + "Z"
        rows.append(item)
    return rows
