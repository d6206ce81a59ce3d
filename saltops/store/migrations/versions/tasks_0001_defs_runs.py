"""tasks: task definitions and their runs (claims, results, history).

Revision ID: tasks_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "tasks_0001"
down_revision = None
branch_labels = ("tasks",)
depends_on = "core_0001"

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.Double()


def upgrade():
    op.create_table(
        "task_defs",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("fun", sa.String(128), nullable=False),
        sa.Column("args", sa.JSON, nullable=False),
        sa.Column("kwargs", sa.JSON, nullable=False),
        sa.Column("targets", sa.String(1024), nullable=True),
        sa.Column("sched_kind", sa.String(8), nullable=False),
        sa.Column("sched_expr", sa.String(255), nullable=False),
        sa.Column("tz", sa.String(64), nullable=False),
        sa.Column("anchor", _TS, nullable=False),
        sa.Column("timeout", sa.Integer, nullable=False),
        sa.Column("overlap", sa.String(8), nullable=False),
        sa.Column("catch_up", sa.String(8), nullable=False),
        sa.Column("notify", sa.String(128), nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("defined_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("next_due", _TS, nullable=True),
        sa.Column("failing", sa.Boolean, nullable=False),
        sa.Column("alarm_pending", sa.String(16), nullable=True),
        sa.Column("alarm_sent_at", _TS, nullable=True),
    )
    op.create_index("ix_task_defs_next_due", "task_defs", ["enabled", "next_due"])
    op.create_table(
        "task_runs",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("task_id", _ID, nullable=False),
        sa.Column("task_name", sa.String(64), nullable=False),
        sa.Column("claim_key", sa.String(96), nullable=False, unique=True),
        sa.Column("due_at", _TS, nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("triggered_by", sa.String(128), nullable=False),
        sa.Column("defined_by", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("heartbeat_at", _TS, nullable=True),
        sa.Column("kill_requested", sa.Boolean, nullable=False),
        sa.Column("jid", sa.String(32), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("retcode", sa.Integer, nullable=True),
        sa.Column("hosts", sa.JSON, nullable=True),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_task_runs_task", "task_runs", ["task_id", "id"])
    op.create_index("ix_task_runs_status", "task_runs", ["status"])
    op.create_index("ix_task_runs_created", "task_runs", ["created_at"])


def downgrade():
    op.drop_table("task_runs")
    op.drop_table("task_defs")
