"""alarms: the remediation ledger (one action per firing episode of an alarm).

Revision ID: alarms_0002
Revises: alarms_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "alarms_0002"
down_revision = "alarms_0001"
branch_labels = None
depends_on = None

_TS = sa.Double()


def upgrade():
    op.create_table(
        "alarm_remediations",
        sa.Column("fingerprint", sa.String(40), primary_key=True),
        sa.Column("episode", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("host", sa.String(253), nullable=False),
        sa.Column("function", sa.String(64), nullable=False),
        sa.Column("args", sa.JSON, nullable=False),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("ok", sa.Boolean, nullable=True),
        sa.Column("detail", sa.String(1024), nullable=True),
    )
    op.create_index("ix_alarm_remediations_started_at", "alarm_remediations", ["started_at"])


def downgrade():
    op.drop_index("ix_alarm_remediations_started_at", table_name="alarm_remediations")
    op.drop_table("alarm_remediations")
