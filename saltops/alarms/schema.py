"""Tables of the alarm pipeline (Alembic branch ``alarms``).

Times are epoch seconds stored as double precision: the pipeline compares
them with ``time.time()`` and sub-second precision matters for latency.
"""

import sqlalchemy as sa

from saltops.store.schema import metadata

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.Double()

# One row per alarm identity (fingerprint): its current state.
alarms = sa.Table(
    "alarm_alarms",
    metadata,
    sa.Column("fingerprint", sa.String(40), primary_key=True),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("annotations", sa.JSON, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("value", sa.Double, nullable=True),
    sa.Column("active_since", _TS, nullable=True),
    sa.Column("fired_at", _TS, nullable=True),
    sa.Column("resolved_at", _TS, nullable=True),
    sa.Column("last_seen", _TS, nullable=False),
    sa.Column("ends_at", _TS, nullable=True),
    # A resolution that no notification has reported yet.
    sa.Column("pending_resolve", sa.Boolean, nullable=False, default=False),
    sa.Column("acked_by", sa.String(128), nullable=True),
    sa.Column("acked_at", _TS, nullable=True),
    sa.Column("updated_at", _TS, nullable=False),
)

# Every state change of every alarm, for `alarm.history`.
history = sa.Table(
    "alarm_history",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(40), nullable=False, index=True),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("ts", _TS, nullable=False, index=True),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("value", sa.Double, nullable=True),
    sa.Column("actor", sa.String(128), nullable=True),
)

silences = sa.Table(
    "alarm_silences",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    # "silence" (made by a person) or "ack" (ends when its alarm resolves).
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("matchers", sa.JSON, nullable=False),
    sa.Column("fingerprint", sa.String(40), nullable=True, index=True),
    sa.Column("starts_at", _TS, nullable=False),
    sa.Column("ends_at", _TS, nullable=False, index=True),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("comment", sa.String(1024), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("updated_at", _TS, nullable=False, index=True),
)

# Notification log: what each (group, receiver) was last told.
nflog = sa.Table(
    "alarm_nflog",
    metadata,
    sa.Column("group_id", sa.String(64), primary_key=True),
    sa.Column("receiver", sa.String(128), primary_key=True),
    sa.Column("group_key", sa.Text, nullable=False),
    sa.Column("firing", sa.JSON, nullable=False),
    sa.Column("resolved", sa.JSON, nullable=False),
    sa.Column("ts", _TS, nullable=False),
)

# When each host was last heard from (for the "host stopped reporting" alarm).
hosts_seen = sa.Table(
    "alarm_hosts",
    metadata,
    sa.Column("hostname", sa.String(253), primary_key=True),
    sa.Column("last_seen", _TS, nullable=False),
)

# Notifications waiting for (or done with) delivery, one row per channel.
outbox = sa.Table(
    "notify_outbox",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("receiver", sa.String(128), nullable=False),
    sa.Column("group_id", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("next_attempt_at", _TS, nullable=False),
    sa.Column("sent_at", _TS, nullable=True),
    sa.Column("last_error", sa.String(1024), nullable=True),
    sa.Index("ix_notify_outbox_due", "status", "next_attempt_at"),
)

# One row per delivery attempt.
deliveries = sa.Table(
    "notify_deliveries",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("outbox_id", _ID, nullable=True, index=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.String(1024), nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("ts", _TS, nullable=False, index=True),
)
