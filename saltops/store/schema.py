"""Table definitions (SQLAlchemy Core) used by the queries.

The store's own tables (named counters, the audit log, the event outbox) and
the one ``metadata`` every room's ``schema.py`` puts its tables on.  The
migrations in ``saltops/store/migrations/versions`` create them; each room owns
one Alembic branch (``core``, ``cmdb``, ``deploy``, ``alarms``...).  The CMDB's
host tables are ``saltops.cmdb.schema``'s (created by ``core_0001``).
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
