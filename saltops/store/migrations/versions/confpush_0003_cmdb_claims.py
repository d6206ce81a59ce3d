"""confpush: one reaction per CMDB change, whichever master receives its event.

Revision ID: confpush_0003_cmdb_claims
Revises: confpush_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "confpush_0003_cmdb_claims"
down_revision = "confpush_0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "confpush_cmdb_claims",
        sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("claimed_at", sa.DateTime, nullable=False),
        sa.Column("claimed_by", sa.String(128), nullable=False),
    )


def downgrade():
    op.drop_table("confpush_cmdb_claims")
