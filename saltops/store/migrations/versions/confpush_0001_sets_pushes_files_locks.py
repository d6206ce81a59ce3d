"""confpush: versioned config sets, pushes, the files pushed to each host, the app/env lock.

Revision ID: confpush_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "confpush_0001"
down_revision = None
branch_labels = ("confpush",)
depends_on = "core_0001"

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_BIG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql")


def upgrade():
    op.create_table(
        "confpush_sets",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("app", sa.String(64), nullable=False),
        sa.Column("env", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("comment", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("app", "env", "version", name="uq_confpush_sets_version"),
    )
    op.create_table(
        "confpush_pushes",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("app", sa.String(64), nullable=False),
        sa.Column("env", sa.String(32), nullable=False),
        sa.Column("set_version", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("plan", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_confpush_pushes_app_env", "confpush_pushes", ["app", "env", "id"])
    op.create_table(
        "confpush_host_files",
        sa.Column("push_id", _ID, sa.ForeignKey("confpush_pushes.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("hostname", sa.String(253), primary_key=True),
        sa.Column("path", sa.String(255), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", _BIG_TEXT, nullable=False),
        sa.Column("secrets", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_confpush_host_files_host", "confpush_host_files", ["hostname", "push_id"])
    op.create_table(
        "confpush_locks",
        sa.Column("app", sa.String(64), primary_key=True),
        sa.Column("env", sa.String(32), primary_key=True),
        sa.Column("push_id", _ID, nullable=False),
        sa.Column("acquired_at", sa.DateTime, nullable=False),
    )


def downgrade():
    for name in ("confpush_locks", "confpush_host_files", "confpush_pushes", "confpush_sets"):
        op.drop_table(name)
