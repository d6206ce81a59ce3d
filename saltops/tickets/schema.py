"""Ticket tables (SQLAlchemy Core), created by the ``tickets`` Alembic branch.

``ticket_templates`` belongs to :mod:`saltops.tickets.templates`; the others
to :mod:`saltops.tickets.workflow`.  Times are POSIX seconds (DOUBLE).
"""

import sqlalchemy as sa

from saltops.store.schema import metadata

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.Double()

# The newest revision of the ``tickets`` Alembic branch.
HEAD = "tickets_0002"

templates = sa.Table(
    "ticket_templates",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    # The checked, normalised template; ``source`` is the YAML as it was saved.
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.UniqueConstraint("name", "version", name="uq_ticket_templates_name_version"),
)

# The applicant's ticket.
tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("template", sa.String(64), nullable=False),
    sa.Column("template_version", sa.Integer, nullable=False),
    sa.Column("title", sa.String(255), nullable=False),
    sa.Column("applicant", sa.String(128), nullable=False),
    sa.Column("form", sa.JSON, nullable=False),
    # in_approval, returned, completed, rejected, cancelled
    sa.Column("state", sa.String(16), nullable=False),
    # Approval rounds: a resubmission starts a new one.
    sa.Column("round", sa.Integer, nullable=False),
    # The current step of the round (an index into the template's steps); NULL: none pending.
    sa.Column("step", sa.Integer, nullable=True),
    # Moved by every change: the row lock is taken through it on every backend.
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
    sa.Column("approved_at", _TS, nullable=True),
    sa.Column("closed_at", _TS, nullable=True),
    sa.Column("rating", sa.Integer, nullable=True),
    sa.Column("rating_comment", sa.Text, nullable=True),
    sa.Index("ix_tickets_applicant", "applicant", "id"),
    sa.Index("ix_tickets_state", "state", "id"),
    sa.Index("ix_tickets_template", "template", "state"),
)

# The approvers' sub-tickets: one per step for mode ``any`` (any candidate closes it),
# one per person for mode ``all`` (countersign).
approvals = sa.Table(
    "ticket_approvals",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", _ID, nullable=False),
    sa.Column("round", sa.Integer, nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("step_name", sa.String(64), nullable=False),
    # 'approve' or 'confirm' (an acknowledgement step)
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("mode", sa.String(8), nullable=False),
    sa.Column("candidates", sa.JSON, nullable=False),
    # pending, approved, returned, rejected, confirmed
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("acted_by", sa.String(128), nullable=True),
    sa.Column("on_behalf_of", sa.String(128), nullable=True),
    sa.Column("acted_at", _TS, nullable=True),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("created_at", _TS, nullable=False),
    sa.Index("ix_ticket_approvals_ticket", "ticket_id", "round", "step"),
    sa.Index("ix_ticket_approvals_state", "state", "ticket_id"),
)

# The automated ticket: the template's runner call, one row per attempt.
actions = sa.Table(
    "ticket_actions",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", _ID, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("fun", sa.String(128), nullable=False),
    sa.Column("args", sa.JSON, nullable=False),
    sa.Column("kwargs", sa.JSON, nullable=False),
    # The call runs as the applicant; ``on_behalf`` names the applicant and the approvers.
    sa.Column("run_as", sa.String(128), nullable=False),
    sa.Column("on_behalf", sa.JSON, nullable=False),
    # pending, done, execution_error
    sa.Column("state", sa.String(16), nullable=False),
    # Set once, by the one caller that runs it (committed before the call).
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

# Every change of state of a ticket, a sub-ticket or an action, and every comment.
transitions = sa.Table(
    "ticket_transitions",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", _ID, nullable=False),
    # 'ticket', 'approval' or 'action'
    sa.Column("entity", sa.String(8), nullable=False),
    sa.Column("entity_id", _ID, nullable=False),
    sa.Column("op", sa.String(16), nullable=False),
    sa.Column("from_state", sa.String(16), nullable=True),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("on_behalf_of", sa.String(128), nullable=True),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("ts", _TS, nullable=False),
    sa.Index("ix_ticket_transitions_ticket", "ticket_id", "id"),
)
