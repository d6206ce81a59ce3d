"""org: users, departments, roles and delegates.

Revision ID: org_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "org_0001"
down_revision = None
branch_labels = ("org",)
depends_on = "core_0001"

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.Double()


def upgrade():
    op.create_table(
        "org_users",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("display_name", sa.String(255), nullable=True),
        sa.Column("email", sa.String(255), nullable=True),
        sa.Column("phone", sa.String(64), nullable=True),
        sa.Column("department", sa.String(128), nullable=True),
        sa.Column("manager", sa.String(128), nullable=True),
        sa.Column("source", sa.String(8), nullable=False),
    )
    op.create_table(
        "org_departments",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("head", sa.String(128), nullable=True),
    )
    op.create_table(
        "org_user_roles",
        sa.Column("user", sa.String(128), primary_key=True),
        sa.Column("role", sa.String(128), primary_key=True),
        sa.Column("source", sa.String(8), nullable=False),
    )
    op.create_index("ix_org_user_roles_role", "org_user_roles", ["role"])
    op.create_table(
        "org_delegates",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("delegate", sa.String(128), nullable=False),
        sa.Column("starts_at", _TS, nullable=False),
        sa.Column("ends_at", _TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_org_delegates_delegate", "org_delegates", ["delegate", "ends_at"])
    op.create_index("ix_org_delegates_principal", "org_delegates", ["principal", "ends_at"])


def downgrade():
    op.drop_table("org_delegates")
    op.drop_table("org_user_roles")
    op.drop_table("org_departments")
    op.drop_table("org_users")
