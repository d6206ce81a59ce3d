"""alarms: the engine lease (one evaluating engine among the masters sharing the database).

Revision ID: alarms_0003_lease
Revises: alarms_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "alarms_0003_lease"
down_revision = "alarms_0002"
branch_labels = None
depends_on = None

_TS = sa.Double()


def upgrade():
    op.create_table(
        "alarm_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("acquired_at", _TS, nullable=False),
    )


def downgrade():
    op.drop_table("alarm_leases")
