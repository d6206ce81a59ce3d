"""Write-behind: one transaction per pipeline batch, and the state read back at start.

Alerts, history, hosts seen, notification-log entries, the end of acks and
the new notifications' outbox rows are committed together, so the database
never holds a notification-log entry without its notification (or the
reverse): after a restart nothing is lost and nothing is sent twice.
"""

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from saltops.alarms import silence as silence_mod
from saltops.alarms.model import Alert
from saltops.alarms.nflog import Entry
from saltops.alarms.schema import alarms, history, hosts_seen, nflog, remediations
from saltops.notify import queue as notify_queue
from saltops.store.outbox import enqueue as event_outbox_enqueue

_ALARM_COLS = ("rule", "source", "labels", "annotations", "state", "value", "active_since", "fired_at",
               "resolved_at", "last_seen", "ends_at", "pending_resolve", "updated_at")


def upsert(conn, table, rows, keys, update_cols):
    """Insert or update ``rows`` (executemany) on MySQL/MariaDB and SQLite."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "mysql":
        stmt = mysql.insert(table)
        stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update_cols})
    elif dialect == "sqlite":
        stmt = sqlite.insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=list(keys),
                                          set_={c: stmt.excluded[c] for c in update_cols})
    else:
        raise RuntimeError(f"unsupported database dialect {dialect}")
    conn.execute(stmt, rows)


class Pending:
    """A batch ready to be written: rows taken from the pipeline, safe to write from another thread.

    The alert rows are copied out of the live :class:`Alert` objects when the
    batch is taken, because the pipeline keeps changing those objects while a
    writer thread commits.  Two pendings merge into one (:meth:`merge`) in
    their order: history, notifications and events are appended, and for
    alerts, hosts and notification-log entries the newer value wins, so a
    write that failed, or a writer that fell behind, commits everything in one
    transaction without reordering anything.
    """

    __slots__ = ("ended_acks", "events", "history", "hosts", "nflog", "notifications", "now", "rows")

    def __init__(self, batch, now, events=()):
        self.rows = {fp: alert.to_row() for fp, alert in batch.alerts.items()}
        self.history = list(batch.history)
        self.hosts = dict(batch.hosts)
        self.nflog = dict(batch.nflog)
        self.notifications = list(batch.notifications)
        self.ended_acks = set(batch.ended_acks)
        self.events = list(events)
        self.now = now

    def merge(self, newer):
        """Add a later pending to this one (this one is changed and returned)."""
        self.rows.update(newer.rows)
        self.history.extend(newer.history)
        self.hosts.update(newer.hosts)
        self.nflog.update(newer.nflog)
        self.notifications.extend(newer.notifications)
        self.ended_acks |= newer.ended_acks
        self.events.extend(newer.events)
        self.now = max(self.now, newer.now)
        return self

    def __len__(self):
        return len(self.rows) + len(self.history) + len(self.hosts) + len(self.notifications)


def write(store, batch, now, events=()):
    """Commit a pipeline batch; return ``[(outbox_id, channel, payload)]`` to deliver.

    ``events`` (``[(tag, data)]``) go to the core event outbox in the same
    transaction, to be fired on the master bus after the commit.
    """
    return write_pending(store, Pending(batch, now, events))


def write_pending(store, pending, fence=None):
    """Commit a :class:`Pending` in one transaction; return what to deliver.

    ``fence(conn, now)`` runs first in the transaction and raises to refuse the write
    (the engine lease: :meth:`saltops.alarms.lease.Lease.fence`).
    """
    now = pending.now
    queued = []
    with store.begin() as conn:
        if fence is not None:
            fence(conn, now)
        for tag, data in pending.events:
            event_outbox_enqueue(conn, tag, data)
        rows = list(pending.rows.values())
        for row in rows:
            row["updated_at"] = now
        upsert(conn, alarms, rows, ("fingerprint",), _ALARM_COLS)
        if pending.history:
            conn.execute(history.insert(), pending.history)
        upsert(conn, hosts_seen, [{"hostname": h, "last_seen": ts} for h, ts in pending.hosts.items()],
               ("hostname",), ("last_seen",))
        upsert(conn, nflog, [
            {"group_id": gid, "receiver": rcv, "group_key": e.group_key, "firing": sorted(e.firing),
             "resolved": sorted(e.resolved), "ts": e.ts}
            for (gid, rcv), e in pending.nflog.items()
        ], ("group_id", "receiver"), ("group_key", "firing", "resolved", "ts"))
        silence_mod.end_acks(conn, pending.ended_acks, now)
        for note in pending.notifications:
            for channel in note.channels:
                oid = notify_queue.enqueue(conn, channel, note.receiver, note.group_id, note.payload, now)
                queued.append((oid, channel, note.payload))
    return queued


def load(conn):
    """(alerts to restore, hosts seen, notification-log entries)."""
    restored = []
    query = sa.select(alarms).where(
        sa.or_(alarms.c.state.in_(("pending", "firing")), alarms.c.pending_resolve.is_(True))
    )
    for row in conn.execute(query):
        restored.append(Alert(
            row.fingerprint, row.rule, row.source, dict(row.labels), dict(row.annotations), row.state,
            row.last_seen, value=row.value, active_since=row.active_since, fired_at=row.fired_at,
            resolved_at=row.resolved_at, ends_at=row.ends_at, pending_resolve=bool(row.pending_resolve),
        ))
    seen = {row.hostname: row.last_seen for row in conn.execute(sa.select(hosts_seen))}
    entries = {
        (row.group_id, row.receiver): Entry(row.group_key, row.firing, row.resolved, row.ts)
        for row in conn.execute(sa.select(nflog))
    }
    return restored, seen, entries


def prune(conn, now, keep_days=30):
    """Drop history, resolved alarms, remediation runs and delivered notifications older than ``keep_days``."""
    cutoff = now - keep_days * 86400
    conn.execute(history.delete().where(history.c.ts < cutoff))
    conn.execute(alarms.delete().where(alarms.c.state == "resolved", alarms.c.updated_at < cutoff,
                                       alarms.c.pending_resolve.is_(False)))
    conn.execute(nflog.delete().where(nflog.c.ts < cutoff))
    # A firing alarm keeps its runs, however old: its episode's row is what stops a second action.
    firing = sa.select(alarms.c.fingerprint).where(alarms.c.state == "firing")
    conn.execute(remediations.delete().where(remediations.c.started_at < cutoff,
                                             remediations.c.fingerprint.not_in(firing)))
    notify_queue.prune(conn, cutoff)
