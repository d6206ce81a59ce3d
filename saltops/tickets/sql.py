"""The workflow's statements on its hot path, built once per process.

A statement built per call costs SQLAlchemy a construction and a walk of the
whole construct to find its compiled form in the cache; a statement object
kept here is compiled once and remembers its cache key, so an execution pays
only for its parameters.  Values come in as execution parameters (``b_*``
names in the WHERE clauses, column names in the SET clauses and inserts).
"""

import sqlalchemy as sa

from saltops.tickets.schema import approvals, tickets, transitions

_TICKET = sa.bindparam("b_ticket")

# The ticket's row as the operations use it (not its title, times or rating comment: every
# column costs the pure-Python driver a field description to parse); on MySQL/MariaDB with its
# row lock (SQLite: see ``BUMP_REVISION``).
TICKET_COLUMNS = (tickets.c.id, tickets.c.template, tickets.c.template_version, tickets.c.applicant,
                  tickets.c.form, tickets.c.state, tickets.c.round, tickets.c.step, tickets.c.revision,
                  tickets.c.approved_at, tickets.c.rating)
SELECT_TICKET = sa.select(*TICKET_COLUMNS).where(tickets.c.id == _TICKET)
LOCK_TICKET = SELECT_TICKET.with_for_update()
# SQLite has no row locks: moving the revision first takes the database's write lock.
BUMP_REVISION = tickets.update().where(tickets.c.id == _TICKET).values(revision=tickets.c.revision + 1)
# The SET clause comes from the parameters' keys (one compiled form per set of keys).
UPDATE_TICKET = tickets.update().where(tickets.c.id == _TICKET)

# What the operations need of the round's undecided sub-tickets.
PENDING_COLUMNS = (approvals.c.id, approvals.c.step, approvals.c.step_name, approvals.c.kind,
                   approvals.c.mode, approvals.c.candidates)
SELECT_PENDING = sa.select(*PENDING_COLUMNS).where(
    (approvals.c.ticket_id == _TICKET) & (approvals.c.round == sa.bindparam("b_round"))
    & (approvals.c.state == "pending")).order_by(approvals.c.id)
# Who decided the round's sub-tickets (the approvers an action runs on behalf of).
SELECT_DECIDERS = sa.select(approvals.c.acted_by).distinct().where(
    (approvals.c.ticket_id == _TICKET) & (approvals.c.round == sa.bindparam("b_round"))
    & approvals.c.acted_by.is_not(None))
UPDATE_APPROVAL = approvals.update().where(approvals.c.id == sa.bindparam("b_approval"))

INSERT_TRANSITION = transitions.insert()
