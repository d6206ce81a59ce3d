"""People tables (SQLAlchemy Core), created by the ``org`` Alembic branch.

All of them belong to :mod:`saltops.org.people`.  Times are POSIX seconds
(DOUBLE), like the task and alarm tables.
"""

import sqlalchemy as sa

from saltops.store.schema import metadata

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.Double()

# The newest revision of the ``org`` Alembic branch.
HEAD = "org_0001"

users = sa.Table(
    "org_users",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("display_name", sa.String(255), nullable=True),
    sa.Column("email", sa.String(255), nullable=True),
    sa.Column("phone", sa.String(64), nullable=True),
    sa.Column("department", sa.String(128), nullable=True),
    sa.Column("manager", sa.String(128), nullable=True),
    # 'yaml' (org.load) or 'eauth' (org.sync_eauth): a sync never removes what a file put there.
    sa.Column("source", sa.String(8), nullable=False),
)

departments = sa.Table(
    "org_departments",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("head", sa.String(128), nullable=True),
)

user_roles = sa.Table(
    "org_user_roles",
    metadata,
    sa.Column("user", sa.String(128), primary_key=True),
    sa.Column("role", sa.String(128), primary_key=True),
    sa.Column("source", sa.String(8), nullable=False),
    sa.Index("ix_org_user_roles_role", "role"),
)

delegates = sa.Table(
    "org_delegates",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    # ``delegate`` approves for ``principal`` from ``starts_at`` until ``ends_at``.
    sa.Column("principal", sa.String(128), nullable=False),
    sa.Column("delegate", sa.String(128), nullable=False),
    sa.Column("starts_at", _TS, nullable=False),
    sa.Column("ends_at", _TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Index("ix_org_delegates_delegate", "delegate", "ends_at"),
    sa.Index("ix_org_delegates_principal", "principal", "ends_at"),
)
