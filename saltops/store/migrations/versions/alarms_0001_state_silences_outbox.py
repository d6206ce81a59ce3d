"""alarms: alarm state, history, silences, notification log, hosts seen, notify outbox.

Revision ID: alarms_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "alarms_0001"
down_revision = None
branch_labels = ("alarms",)
depends_on = "core_0001"

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.Double()


def upgrade():
    op.create_table(
        "alarm_alarms",
        sa.Column("fingerprint", sa.String(40), primary_key=True),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("annotations", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("active_since", _TS, nullable=True),
        sa.Column("fired_at", _TS, nullable=True),
        sa.Column("resolved_at", _TS, nullable=True),
        sa.Column("last_seen", _TS, nullable=False),
        sa.Column("ends_at", _TS, nullable=True),
        sa.Column("pending_resolve", sa.Boolean, nullable=False),
        sa.Column("acked_by", sa.String(128), nullable=True),
        sa.Column("acked_at", _TS, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_alarm_alarms_state", "alarm_alarms", ["state"])
    op.create_table(
        "alarm_history",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(40), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("actor", sa.String(128), nullable=True),
    )
    op.create_index("ix_alarm_history_fingerprint", "alarm_history", ["fingerprint"])
    op.create_index("ix_alarm_history_ts", "alarm_history", ["ts"])
    op.create_table(
        "alarm_silences",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("matchers", sa.JSON, nullable=False),
        sa.Column("fingerprint", sa.String(40), nullable=True),
        sa.Column("starts_at", _TS, nullable=False),
        sa.Column("ends_at", _TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("comment", sa.String(1024), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_alarm_silences_fingerprint", "alarm_silences", ["fingerprint"])
    op.create_index("ix_alarm_silences_ends_at", "alarm_silences", ["ends_at"])
    op.create_index("ix_alarm_silences_updated_at", "alarm_silences", ["updated_at"])
    op.create_table(
        "alarm_nflog",
        sa.Column("group_id", sa.String(64), primary_key=True),
        sa.Column("receiver", sa.String(128), primary_key=True),
        sa.Column("group_key", sa.Text, nullable=False),
        sa.Column("firing", sa.JSON, nullable=False),
        sa.Column("resolved", sa.JSON, nullable=False),
        sa.Column("ts", _TS, nullable=False),
    )
    op.create_table(
        "alarm_hosts",
        sa.Column("hostname", sa.String(253), primary_key=True),
        sa.Column("last_seen", _TS, nullable=False),
    )
    op.create_table(
        "notify_outbox",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("receiver", sa.String(128), nullable=False),
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=False),
        sa.Column("sent_at", _TS, nullable=True),
        sa.Column("last_error", sa.String(1024), nullable=True),
    )
    op.create_index("ix_notify_outbox_due", "notify_outbox", ["status", "next_attempt_at"])
    op.create_table(
        "notify_deliveries",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("outbox_id", _ID, nullable=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error", sa.String(1024), nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("ts", _TS, nullable=False),
    )
    op.create_index("ix_notify_deliveries_outbox_id", "notify_deliveries", ["outbox_id"])
    op.create_index("ix_notify_deliveries_ts", "notify_deliveries", ["ts"])


def downgrade():
    for name in (
        "notify_deliveries",
        "notify_outbox",
        "alarm_hosts",
        "alarm_nflog",
        "alarm_silences",
        "alarm_history",
        "alarm_alarms",
    ):
        op.drop_table(name)
