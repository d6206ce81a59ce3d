"""Config push tables (SQLAlchemy Core), created by the ``confpush`` Alembic branch.

:mod:`saltops.confpush.store` owns them; nothing else writes here.
"""

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from saltops.store.schema import metadata

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
# A set's spec or a rendered file can exceed TEXT's 64 KiB on MySQL.
_BIG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql")

# The newest revision of the ``confpush`` Alembic branch.
HEAD = "confpush_0003_cmdb_claims"

# One row per stored version of an app/env's set; ``spec`` is the checked set.
sets = sa.Table(
    "confpush_sets",
    metadata,
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

# One row per push (a rollback, a migration and a reactor push are pushes too).
pushes = sa.Table(
    "confpush_pushes",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("app", sa.String(64), nullable=False),
    sa.Column("env", sa.String(32), nullable=False),
    sa.Column("set_version", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("plan", sa.JSON, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    # host:pid of the process driving the push, and its last sign of life.
    sa.Column("owner", sa.String(255), nullable=True),
    sa.Column("heartbeat_at", sa.DateTime, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=True),
    # The batch published last and ``{hostname: jid}`` of its Salt jobs: what
    # confpush.resume/abort read back from Salt's job cache after the runner died.
    sa.Column("batch", sa.Integer, nullable=True),
    sa.Column("jobs", sa.JSON, nullable=True),
    sa.Index("ix_confpush_pushes_app_env", "app", "env", "id"),
)

# Every file a push plans to write on every host (status ``planned`` when the
# push starts), then what became of it: the exact text, so a rollback writes the
# same bytes again and a resumed push the bytes it planned.  ``secrets`` maps
# marker -> reference.
host_files = sa.Table(
    "confpush_host_files",
    metadata,
    sa.Column("push_id", _ID, sa.ForeignKey("confpush_pushes.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("hostname", sa.String(253), primary_key=True),
    sa.Column("path", sa.String(255), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content", _BIG_TEXT, nullable=False),
    sa.Column("secrets", sa.JSON, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_confpush_host_files_host", "hostname", "push_id"),
)

# One push per app and env at a time.
locks = sa.Table(
    "confpush_locks",
    metadata,
    sa.Column("app", sa.String(64), primary_key=True),
    sa.Column("env", sa.String(32), primary_key=True),
    sa.Column("push_id", _ID, nullable=False),
    sa.Column("acquired_at", sa.DateTime, nullable=False),
)

# CMDB versions whose reaction (``on_cmdb_change``) one master took: the event that
# announces a change may reach several masters, or come again, and each change is
# pushed once.
cmdb_claims = sa.Table(
    "confpush_cmdb_claims",
    metadata,
    sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("claimed_at", sa.DateTime, nullable=False),
    sa.Column("claimed_by", sa.String(128), nullable=False),
)
