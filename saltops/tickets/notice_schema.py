"""The tables of approvers' notices and phone links (Alembic revision ``tickets_0002``).

``ticket_notices`` belongs to :mod:`saltops.tickets.notices` (one row per
approver told about a sub-ticket, per kind: ``next``, ``remind``,
``escalate``: a notice is never sent twice); ``ticket_links`` to
:mod:`saltops.tickets.links` (one row per signed link: burned on use).
"""

import sqlalchemy as sa

from saltops.store.schema import metadata

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.Double()

notices = sa.Table(
    "ticket_notices",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", _ID, nullable=False),
    sa.Column("approval_id", _ID, nullable=False),
    sa.Column("user", sa.String(128), nullable=False),
    # next (the step waits for them), remind (past remind_after), escalate (past escalate_after)
    sa.Column("kind", sa.String(8), nullable=False),
    # How many notification rows were queued for it (0: the user has no address on any channel).
    sa.Column("deliveries", sa.Integer, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.UniqueConstraint("approval_id", "user", "kind", name="uq_ticket_notices_once"),
    sa.Index("ix_ticket_notices_ticket", "ticket_id"),
)

links = sa.Table(
    "ticket_links",
    metadata,
    sa.Column("nonce", sa.String(32), primary_key=True),
    sa.Column("ticket_id", _ID, nullable=False),
    sa.Column("approval_id", _ID, nullable=False),
    sa.Column("user", sa.String(128), nullable=False),
    sa.Column("expires_at", _TS, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    # Set once, when the link is used (approve or reject); a used link is refused.
    sa.Column("used_at", _TS, nullable=True),
    sa.Column("used_for", sa.String(8), nullable=True),
    sa.Index("ix_ticket_links_expiry", "expires_at"),
)
