"""core: CMDB hosts, audit log, event outbox.

Revision ID: core_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "core_0001"
down_revision = None
branch_labels = ("core",)
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade():
    op.create_table(
        "saltops_meta",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        sa.table("saltops_meta", sa.column("name", sa.String), sa.column("value", sa.BigInteger)),
        [{"name": "cmdb_version", "value": 0}],
    )
    op.create_table(
        "cmdb_hosts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("hostname", sa.String(253), nullable=False, unique=True),
        sa.Column("ip", sa.String(45), nullable=False),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("machine_type", sa.String(32), nullable=False),
        sa.Column("idc", sa.String(64), nullable=False),
        sa.Column("env", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_cmdb_hosts_version", "cmdb_hosts", ["version"])
    for name, col in (("cmdb_host_roles", "role"), ("cmdb_host_lines", "line"), ("cmdb_host_apps", "app")):
        extra = []
        if name == "cmdb_host_lines":
            extra = [sa.Column("address", sa.String(45), nullable=False)]
        elif name == "cmdb_host_apps":
            extra = [sa.Column("settings", sa.JSON, nullable=False)]
        op.create_table(
            name,
            sa.Column(
                "host_id",
                sa.Integer,
                sa.ForeignKey("cmdb_hosts.id", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column(col, sa.String(64 if col != "line" else 32), primary_key=True),
            *extra,
        )
        op.create_index(f"ix_{name}_{col}", name, [col])
    op.create_table(
        "cmdb_tombstones",
        sa.Column("hostname", sa.String(253), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_cmdb_tombstones_version", "cmdb_tombstones", ["version"])
    op.create_table(
        "audit_log",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(255), nullable=False),
        sa.Column("before", sa.JSON, nullable=True),
        sa.Column("after", sa.JSON, nullable=True),
        sa.Column("version", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_audit_log_ts", "audit_log", ["ts"])
    op.create_index("ix_audit_object", "audit_log", ["object_type", "object_id"])
    op.create_table(
        "event_outbox",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("tag", sa.String(255), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("sent_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_event_outbox_sent_at", "event_outbox", ["sent_at"])


def downgrade():
    for name in (
        "event_outbox",
        "audit_log",
        "cmdb_tombstones",
        "cmdb_host_apps",
        "cmdb_host_lines",
        "cmdb_host_roles",
        "cmdb_hosts",
        "saltops_meta",
    ):
        op.drop_table(name)
