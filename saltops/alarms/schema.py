"""Tables of the alarm pipeline (Alembic branch ``alarms``).

The notification tables created by the same migration belong to
:mod:`saltops.notify.schema`.

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

# One row per remediation run: at most one per firing episode of an alarm (the
# primary key), written in the transaction that decides to run it.
remediations = sa.Table(
    "alarm_remediations",
    metadata,
    sa.Column("fingerprint", sa.String(40), primary_key=True),
    # The episode: the alarm's fired_at in milliseconds (a new firing is a new episode).
    sa.Column("episode", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("host", sa.String(253), nullable=False),
    sa.Column("function", sa.String(64), nullable=False),
    sa.Column("args", sa.JSON, nullable=False),
    sa.Column("actor", sa.String(128), nullable=True),
    sa.Column("started_at", _TS, nullable=False, index=True),
    sa.Column("finished_at", _TS, nullable=True),
    # None while running (or when the master died before the answer came back).
    sa.Column("ok", sa.Boolean, nullable=True),
    sa.Column("detail", sa.String(1024), nullable=True),
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

# Which alarm engine evaluates among the masters sharing this database, and until when
# (saltops.alarms.lease).  One row per lease name; the holder renews it while it runs.
leases = sa.Table(
    "alarm_leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("expires_at", _TS, nullable=False),
    sa.Column("acquired_at", _TS, nullable=False),
)
