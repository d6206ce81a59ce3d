"""Deadlines of approval steps: remind the approvers, then escalate to their managers.

:func:`check` is what the ``ticket.check_deadlines`` runner does, on the
scheduled-tasks machinery (a task registered by :func:`ensure_tasks`, every
minute by default).  For each open ticket, from the store:

* the people of the current step who were never told are told (a runner that
  stopped between a transition and its notices leaves such people);
* past ``remind_after`` since the step began, each of them is reminded once,
  and so are the people who may approve for them now (their delegates);
* past ``escalate_after``, each late sub-ticket is escalated once: the
  approvers' managers may approve it too (an ``escalate`` transition) and
  are told, with the approvers' delegates.

A step begins when the previous step's last sub-ticket was decided, or when
the round was routed.  Every action is idempotent (unique notices, one
``escalate`` transition per sub-ticket), so two masters, or a run that
follows a crash, change nothing twice.
"""

import sqlalchemy as sa

from saltops.org import people
from saltops.tasks import definitions
from saltops.tickets.schema import approvals
from saltops.tickets.workflow import Refused

ACTOR = "saltops-deadlines"


def step_started(conn, ticket):
    """When the ticket's current step began (POSIX seconds)."""
    rows = conn.execute(sa.select(approvals.c.step, approvals.c.acted_at, approvals.c.created_at).where(
        (approvals.c.ticket_id == ticket["id"]) & (approvals.c.round == ticket["round"]))).all()
    routed = min(r.created_at for r in rows)
    earlier = [r.acted_at for r in rows if r.step < ticket["step"] and r.acted_at is not None]
    return max([routed, *earlier])


def check(flow, notifier, now):
    """One pass over the open tickets; what was done, for the task's history."""
    settings = notifier.settings
    done = {"told": notifier.announce(), "reminded": [], "escalated": []}
    with flow.store.connect() as conn:
        waiting = [(ticket, rows, step_started(conn, ticket)) for ticket, rows in notifier.pending(conn)]
    for ticket, rows, started in waiting:
        late = now - started
        if late < settings["remind_after"]:
            continue
        for row in rows:
            with flow.store.connect() as conn:
                standins = {u: people.delegates_of(conn, u, now) for u in row["candidates"]}
                managers = [people.manager_of(conn, u) for u in row["candidates"]]
            hours = f"waiting {late / 3600:.1f} h"
            for user in row["candidates"]:
                for who in [user, *standins[user]]:
                    if notifier.tell(ticket, row, who, "remind", note=_for(who, user, hours)):
                        done["reminded"].append({"ticket": ticket["id"], "user": who})
            if late < settings["escalate_after"]:
                continue
            names = [m for m in managers if m]
            comment = f"past escalate_after ({hours}): " + (f"added {', '.join(names)}" if names else
                                                             "no manager to add")
            added = flow.escalate(ACTOR, ticket["id"], row["id"], names, comment)
            if added is None:
                continue
            row = {**row, "candidates": [*row["candidates"], *added]}
            told = [*added, *(d for u in row["candidates"] for d in standins.get(u, []))]
            for who in dict.fromkeys(told):
                notifier.tell(ticket, row, who, "escalate", note=f"The approvers have been {hours}.")
            done["escalated"].append({"ticket": ticket["id"], "approval": row["id"], "added": added})
    return done


def _for(who, user, hours):
    return f"Reminder ({hours})." if who == user else f"Reminder ({hours}): you may approve for {user}."


# The tasks the tickets run on the scheduled-tasks machinery: name -> (function, defaults).
TASKS = {"tickets-deadlines": "ticket.check_deadlines", "tickets-report": "ticket.report"}


def ensure_tasks(store, actor, ops_role, task_settings, now, check_function, deadlines_every="1m",
                 report_cron="0 8 * * 1", report_format="table"):
    """Define (or bring up to date) the deadline check and the periodic report as scheduled tasks.

    Only a member of ``ops_role`` does (the tasks run as them, and the report
    needs the role): anyone else is refused before anything is checked or written.
    """
    with store.connect() as conn:
        if not people.has_role(conn, actor, ops_role):
            raise Refused(f"{actor} does not have the role {ops_role!r}: only operators schedule the "
                          f"tickets' tasks; nothing was changed")
    checker = definitions.ensure_runner_task(
        store, "tickets-deadlines", TASKS["tickets-deadlines"], {}, actor, task_settings, now, check_function,
        every=deadlines_every, overlap="skip", catch_up="once")
    report = definitions.ensure_runner_task(
        store, "tickets-report", TASKS["tickets-report"], {"format": report_format}, actor, task_settings, now,
        check_function, cron=report_cron, overlap="skip", catch_up="skip")
    return {"deadlines": checker, "report": report}
