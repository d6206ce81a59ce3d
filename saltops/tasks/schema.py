"""Task tables (SQLAlchemy Core), created by the ``tasks`` Alembic branch.

``task_defs`` belongs to :mod:`saltops.tasks.definitions`, ``task_runs`` to
:mod:`saltops.tasks.runs`.  Times are POSIX seconds (DOUBLE), like the alarm
tables: the schedule math and the claims compare them exactly.
"""

import sqlalchemy as sa

from saltops.store.schema import metadata

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.Double()

# The newest revision of the ``tasks`` Alembic branch.
HEAD = "tasks_0001"

definitions = sa.Table(
    "task_defs",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    # 'runner' (a runner call on the master) or 'minion' (an execution function on targets).
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
    # Moved by every change of the definition (not by claims): the engines reload on it.
    sa.Column("updated_at", _TS, nullable=False),
    # The next due time not yet claimed; NULL: nothing more to fire (a one-off that ran).
    sa.Column("next_due", _TS, nullable=True),
    # The last finished run failed; alarm_pending: 'firing' or 'resolved' still to tell the alarm engine.
    sa.Column("failing", sa.Boolean, nullable=False),
    sa.Column("alarm_pending", sa.String(16), nullable=True),
    sa.Column("alarm_sent_at", _TS, nullable=True),
    sa.Index("ix_task_defs_next_due", "enabled", "next_due"),
)

runs = sa.Table(
    "task_runs",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("task_id", _ID, nullable=False),
    sa.Column("task_name", sa.String(64), nullable=False),
    # '<task id>:<due time>' for a scheduled run, '<task id>:manual:<random>' for run_now: the
    # unique key that lets exactly one master claim a due time.
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
    sa.Index("ix_task_runs_task", "task_id", "id"),
    sa.Index("ix_task_runs_status", "status"),
    sa.Index("ix_task_runs_created", "created_at"),
)
