"""tickets: notices sent to approvers (next step, reminder, escalation) and the phone page's links.

Revision ID: tickets_0002
Revises: tickets_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "tickets_0002"
down_revision = "tickets_0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.Double()


def upgrade():
    op.create_table(
        "ticket_notices",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", _ID, nullable=False),
        sa.Column("approval_id", _ID, nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("approval_id", "user", "kind", name="uq_ticket_notices_once"),
        sa.Index("ix_ticket_notices_ticket", "ticket_id"),
    )
    op.create_table(
        "ticket_links",
        sa.Column("nonce", sa.String(32), primary_key=True),
        sa.Column("ticket_id", _ID, nullable=False),
        sa.Column("approval_id", _ID, nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("used_at", _TS, nullable=True),
        sa.Column("used_for", sa.String(8), nullable=True),
        sa.Index("ix_ticket_links_expiry", "expires_at"),
    )


def downgrade():
    op.drop_table("ticket_links")
    op.drop_table("ticket_notices")
