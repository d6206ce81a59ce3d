"""The CMDB's tables: the hosts and what hangs off them (created by ``core_0001``), and the
refresh claims (the ``cmdb`` Alembic branch).  ``saltops.cmdb.repo`` and
``saltops.cmdb.refreshes`` read and write them; other rooms call those."""

import sqlalchemy as sa

from saltops.store.schema import metadata

# The newest revision of the ``cmdb`` Alembic branch.
HEAD = "cmdb_0001"

hosts = sa.Table(
    "cmdb_hosts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("hostname", sa.String(253), nullable=False, unique=True),
    sa.Column("ip", sa.String(45), nullable=False),
    sa.Column("platform", sa.String(64), nullable=False),
    sa.Column("machine_type", sa.String(32), nullable=False),
    sa.Column("idc", sa.String(64), nullable=False),
    sa.Column("env", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(128), nullable=False),
    # The CMDB version of the change that last touched this row.
    sa.Column("version", sa.BigInteger, nullable=False, index=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

host_roles = sa.Table(
    "cmdb_host_roles",
    metadata,
    sa.Column("host_id", sa.Integer, sa.ForeignKey("cmdb_hosts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.String(64), primary_key=True, index=True),
)

host_lines = sa.Table(
    "cmdb_host_lines",
    metadata,
    sa.Column("host_id", sa.Integer, sa.ForeignKey("cmdb_hosts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("line", sa.String(32), primary_key=True, index=True),
    sa.Column("address", sa.String(45), nullable=False),
)

host_apps = sa.Table(
    "cmdb_host_apps",
    metadata,
    sa.Column("host_id", sa.Integer, sa.ForeignKey("cmdb_hosts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("app", sa.String(64), primary_key=True, index=True),
    sa.Column("settings", sa.JSON, nullable=False),
)

# Hosts purged from the CMDB, so that a cached snapshot can drop them on refresh.
tombstones = sa.Table(
    "cmdb_tombstones",
    metadata,
    sa.Column("hostname", sa.String(253), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False, index=True),
)

# One row per CMDB version whose write queued a ``saltops/cmdb/changed`` event,
# written in the write's own transaction.  The reactor's ``cmdb.refresh`` claims
# the row (``claimed_at``) before it acts, so a replayed or forged event for a
# version acts at most once, and an event for a version no write queued acts never.
refreshes = sa.Table(
    "cmdb_refreshes",
    metadata,
    sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("queued_at", sa.DateTime, nullable=False),
    sa.Column("claimed_at", sa.DateTime, nullable=True),
    sa.Column("claimed_by", sa.String(128), nullable=True),
)
