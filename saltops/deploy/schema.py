"""Deploy tables (SQLAlchemy Core), created by the ``deploy`` Alembic branch."""

import sqlalchemy as sa

from saltops.store.schema import metadata

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

# The newest revision of the ``deploy`` Alembic branch (checked by a test):
# a database that has it recorded needs no migration for the deploy tables.
HEAD = "deploy_0001"

# One row per deploy (a rollback is a deploy too, with ``kind`` 'rollback').
runs = sa.Table(
    "deploy_runs",
    metadata,
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
    # Index into plan["batches"] of the next batch to switch (resume point).
    sa.Column("next_batch", sa.Integer, nullable=False),
    sa.Column("rollback_of", _ID, nullable=True),
    sa.Column("slot", sa.String(8), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    # host:pid of the process driving the deploy; NULL while paused.
    sa.Column("owner", sa.String(255), nullable=True),
    sa.Column("heartbeat_at", sa.DateTime, nullable=True),
    sa.Column("abort_requested", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=True),
    sa.Index("ix_deploy_runs_app_env", "app", "env", "id"),
    sa.Index("ix_deploy_runs_status", "status"),
)

hosts = sa.Table(
    "deploy_hosts",
    metadata,
    sa.Column("deploy_id", _ID, sa.ForeignKey("deploy_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("hostname", sa.String(253), primary_key=True),
    sa.Column("batch", sa.Integer, nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    # The version live before this deploy switched the host (rollback target).
    sa.Column("previous_version", sa.String(64), nullable=True),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("steps", sa.JSON, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

batches = sa.Table(
    "deploy_batches",
    metadata,
    sa.Column("deploy_id", _ID, sa.ForeignKey("deploy_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=True),
    sa.Column("finished_at", sa.DateTime, nullable=True),
)

# One deploy per app and env at a time.
locks = sa.Table(
    "deploy_locks",
    metadata,
    sa.Column("app", sa.String(64), primary_key=True),
    sa.Column("env", sa.String(32), primary_key=True),
    sa.Column("deploy_id", _ID, nullable=False),
    sa.Column("acquired_at", sa.DateTime, nullable=False),
)

# Blue/green: which slot the balancers send traffic to, per app and env.
slots = sa.Table(
    "deploy_slots",
    metadata,
    sa.Column("app", sa.String(64), primary_key=True),
    sa.Column("env", sa.String(32), primary_key=True),
    sa.Column("active", sa.String(8), nullable=False),
    sa.Column("blue_version", sa.String(64), nullable=True),
    sa.Column("green_version", sa.String(64), nullable=True),
    sa.Column("deploy_id", _ID, nullable=True),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
