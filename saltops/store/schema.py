"""Table definitions (SQLAlchemy Core) used by the queries.

The migrations in ``saltops/store/migrations/versions`` create these tables;
each subsystem owns one Alembic branch (``core``, ``deploy``, ``alarms``...)
and keeps its own table definitions in a module of its own beside this one.
"""

import sqlalchemy as sa

metadata = sa.MetaData()

# Named settings and counters; ``cmdb_version`` is the CMDB change counter.
meta = sa.Table(
    "saltops_meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

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

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("ts", sa.DateTime, nullable=False, index=True),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("object_type", sa.String(32), nullable=False),
    sa.Column("object_id", sa.String(255), nullable=False),
    sa.Column("before", sa.JSON, nullable=True),
    sa.Column("after", sa.JSON, nullable=True),
    sa.Column("version", sa.BigInteger, nullable=True),
    sa.Index("ix_audit_object", "object_type", "object_id"),
)

# Events written in the same transaction as the change they announce and fired
# after the commit, so a process that dies in between fires them on its next run.
event_outbox = sa.Table(
    "event_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("tag", sa.String(255), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("sent_at", sa.DateTime, nullable=True, index=True),
)
