"""deploy: deploy runs, host results, batches, the app/env lock, blue/green slots.

Revision ID: deploy_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "deploy_0001"
down_revision = None
branch_labels = ("deploy",)
depends_on = "core_0001"

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade():
    op.create_table(
        "deploy_runs",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("app", sa.String(64), nullable=False),
        sa.Column("env", sa.String(32), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("artifact", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("plan", sa.JSON, nullable=False),
        sa.Column("next_batch", sa.Integer, nullable=False),
        sa.Column("rollback_of", _ID, nullable=True),
        sa.Column("slot", sa.String(8), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime, nullable=True),
        sa.Column("abort_requested", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_deploy_runs_app_env", "deploy_runs", ["app", "env", "id"])
    op.create_index("ix_deploy_runs_status", "deploy_runs", ["status"])
    op.create_table(
        "deploy_hosts",
        sa.Column("deploy_id", _ID, sa.ForeignKey("deploy_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("hostname", sa.String(253), primary_key=True),
        sa.Column("batch", sa.Integer, nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("previous_version", sa.String(64), nullable=True),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("steps", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "deploy_batches",
        sa.Column("deploy_id", _ID, sa.ForeignKey("deploy_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=True),
        sa.Column("finished_at", sa.DateTime, nullable=True),
    )
    op.create_table(
        "deploy_locks",
        sa.Column("app", sa.String(64), primary_key=True),
        sa.Column("env", sa.String(32), primary_key=True),
        sa.Column("deploy_id", _ID, nullable=False),
        sa.Column("acquired_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "deploy_slots",
        sa.Column("app", sa.String(64), primary_key=True),
        sa.Column("env", sa.String(32), primary_key=True),
        sa.Column("active", sa.String(8), nullable=False),
        sa.Column("blue_version", sa.String(64), nullable=True),
        sa.Column("green_version", sa.String(64), nullable=True),
        sa.Column("deploy_id", _ID, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )


def downgrade():
    for name in ("deploy_slots", "deploy_locks", "deploy_batches", "deploy_hosts", "deploy_runs"):
        op.drop_table(name)
