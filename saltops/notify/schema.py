"""Tables of notification delivery: the outbox and the delivery log.

They are created by the ``alarms_0001`` migration (the alarm pipeline was
their first writer and migrations are frozen history), but this module owns
their definitions: only :mod:`saltops.notify.queue` reads and writes them.
Times are epoch seconds, as in the alarm tables.
"""

import sqlalchemy as sa

from saltops.store.schema import metadata

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.Double()

# Notifications waiting for (or done with) delivery, one row per channel.  ``status`` is
# pending, sending (an attempt is claimed: ``next_attempt_at`` is then the end of its lease),
# sent or failed.
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
