"""tickets: templates, tickets, approvers' sub-tickets, actions and transitions.

Revision ID: tickets_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "tickets_0001"
down_revision = None
branch_labels = ("tickets",)
depends_on = "core_0001"

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.Double()


def upgrade():
    op.create_table(
        "ticket_templates",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_ticket_templates_name_version"),
    )
    op.create_table(
        "tickets",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("template_version", sa.Integer, nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("applicant", sa.String(128), nullable=False),
        sa.Column("form", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("step", sa.Integer, nullable=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("approved_at", _TS, nullable=True),
        sa.Column("closed_at", _TS, nullable=True),
        sa.Column("rating", sa.Integer, nullable=True),
        sa.Column("rating_comment", sa.Text, nullable=True),
    )
    op.create_index("ix_tickets_applicant", "tickets", ["applicant", "id"])
    op.create_index("ix_tickets_state", "tickets", ["state", "id"])
    op.create_index("ix_tickets_template", "tickets", ["template", "state"])
    op.create_table(
        "ticket_approvals",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", _ID, nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("step_name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("candidates", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("acted_by", sa.String(128), nullable=True),
        sa.Column("on_behalf_of", sa.String(128), nullable=True),
        sa.Column("acted_at", _TS, nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_ticket_approvals_ticket", "ticket_approvals", ["ticket_id", "round", "step"])
    op.create_index("ix_ticket_approvals_state", "ticket_approvals", ["state", "ticket_id"])
    op.create_table(
        "ticket_actions",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", _ID, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("fun", sa.String(128), nullable=False),
        sa.Column("args", sa.JSON, nullable=False),
        sa.Column("kwargs", sa.JSON, nullable=False),
        sa.Column("run_as", sa.String(128), nullable=False),
        sa.Column("on_behalf", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(255), nullable=True),
        sa.Column("claimed_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("retcode", sa.Integer, nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("ticket_id", "attempt", name="uq_ticket_actions_attempt"),
    )
    op.create_table(
        "ticket_transitions",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", _ID, nullable=False),
        sa.Column("entity", sa.String(8), nullable=False),
        sa.Column("entity_id", _ID, nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("on_behalf_of", sa.String(128), nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("ts", _TS, nullable=False),
    )
    op.create_index("ix_ticket_transitions_ticket", "ticket_transitions", ["ticket_id", "id"])


def downgrade():
    for table in ("ticket_transitions", "ticket_actions", "ticket_approvals", "tickets", "ticket_templates"):
        op.drop_table(table)
