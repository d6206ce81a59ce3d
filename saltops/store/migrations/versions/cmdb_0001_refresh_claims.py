"""cmdb: one row per CMDB version whose change asks for a pillar refresh.

Revision ID: cmdb_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "cmdb_0001"
down_revision = None
branch_labels = ("cmdb",)
depends_on = "core_0001"


def upgrade():
    op.create_table(
        "cmdb_refreshes",
        sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("queued_at", sa.DateTime, nullable=False),
        sa.Column("claimed_at", sa.DateTime, nullable=True),
        sa.Column("claimed_by", sa.String(128), nullable=True),
    )


def downgrade():
    op.drop_table("cmdb_refreshes")
