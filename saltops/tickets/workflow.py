"""The ticket workflow: a state machine over the store, decided from the store.

Three kinds of record move through it (states as the project's seeds name them):

* the applicant's ticket: ``in_approval`` -> ``returned`` | ``completed`` |
  ``rejected`` | ``cancelled``; ``returned`` -> ``in_approval`` (resubmit) |
  ``cancelled``.  It stays ``in_approval`` until its action is ``done``.
* the approvers' sub-tickets: ``pending`` -> ``approved`` | ``returned`` |
  ``rejected`` | ``confirmed`` (a ``type: confirm`` step).
* the automated ticket (the action, one row per attempt): ``pending`` ->
  ``done`` | ``execution_error``.

Every operation takes the ticket's row lock first (``SELECT ... FOR UPDATE``
on MySQL/MariaDB; on SQLite the row's revision is bumped first, which takes
the database's single write lock), checks who may act from the store, and
records each change of state in ``ticket_transitions`` with an event
``saltops/ticket/<id>/<op>`` in the outbox, in one transaction.  A refused
call raises before anything is written.

The action is claimed in its own committed transaction before it is called
(``claimed_by`` goes from NULL to the caller once), so it runs at most once;
a failure is ``execution_error`` and only :meth:`Workflow.retry` (role
``ops``) makes a new attempt.
"""

import logging
import os
import socket
import time

import sqlalchemy as sa
from sqlalchemy import exc

from saltops.cmdb import repo as cmdb_repo
from saltops.errors import NotFound, SaltOpsError, ValidationError
from saltops.org import people
from saltops.store import outbox
from saltops.tasks import targets as cmdb_targets
from saltops.tickets import conditions, sql, templates
from saltops.tickets.schema import actions, approvals, tickets, transitions

log = logging.getLogger(__name__)

TICKET_STATES = ("in_approval", "returned", "completed", "rejected", "cancelled")
APPROVAL_STATES = ("pending", "approved", "returned", "rejected", "confirmed")
ACTION_STATES = ("pending", "done", "execution_error")
OPEN = ("in_approval", "returned")

# The only moves the workflow makes; :func:`_move` refuses any other.
TICKET_MOVES = {
    (None, "in_approval"), ("in_approval", "returned"), ("returned", "in_approval"),
    ("in_approval", "completed"), ("in_approval", "rejected"), ("in_approval", "cancelled"),
    ("returned", "cancelled"),
}
APPROVAL_MOVES = {(None, "pending"), ("pending", "approved"), ("pending", "returned"), ("pending", "rejected"),
                  ("pending", "confirmed")}
ACTION_MOVES = {(None, "pending"), ("pending", "done"), ("pending", "execution_error")}
_MOVES = {"ticket": TICKET_MOVES, "approval": APPROVAL_MOVES, "action": ACTION_MOVES}

OUTPUT_LIMIT = 64 * 1024
_DEADLOCK = {1213, 1205}  # ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT


class Refused(SaltOpsError):
    """The acting user may not do this (or not now); nothing was changed."""


class IllegalMove(SaltOpsError):
    """A change of state the workflow never makes (a bug, never user input)."""


def _move(entity, before, after):
    if (before, after) not in _MOVES[entity]:
        raise IllegalMove(f"{entity}: {before} -> {after} is not a workflow transition")


class Workflow:
    """The ticket operations for one store.

    ``executor(call)`` runs an action: ``call`` is ``{"fun", "args",
    "kwargs", "run_as", "targets", "ticket_id", "action_id", "on_behalf"}``
    (``targets``: hostnames for a state run, else ``None``) and it returns ``{"ok", "retcode", "output"}``
    (and optionally ``result``, a mapping kept on the action beside ``ok`` and ``retcode``); the runner
    builds it from Salt's clients (:mod:`saltops.bridge.ticketcalls`).
    Without one, a due action stays ``pending`` until :meth:`run_action`.
    ``clock`` gives POSIX seconds; ``ops_role`` names the operators' role.
    """

    def __init__(self, store, executor=None, clock=time.time, ops_role="ops", owner=None):
        self.store = store
        self.executor = executor
        self.clock = clock
        self.ops_role = ops_role
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"

    # ------------------------------------------------------------------ helpers

    def _tx(self, body):
        """Run ``body(conn)`` in a transaction, again after a MySQL deadlock (it changed nothing)."""
        for attempt in range(5):
            try:
                with self.store.begin() as conn:
                    return body(conn)
            except exc.OperationalError as err:
                code = getattr(getattr(err, "orig", None), "args", [None])[0]
                if code not in _DEADLOCK or attempt == 4:
                    raise
                time.sleep(0.01 * (attempt + 1))
        return None

    def _lock(self, conn, ticket_id):
        ticket_id = _ticket_id(ticket_id)
        key = {"b_ticket": ticket_id}
        if conn.dialect.name == "sqlite":
            conn.execute(sql.BUMP_REVISION, key)
            row = conn.execute(sql.SELECT_TICKET, key).first()
        else:
            row = conn.execute(sql.LOCK_TICKET, key).first()
        if row is None:
            raise NotFound(f"no ticket {ticket_id}")
        return dict(row._mapping)

    def _record(self, conn, ticket, entity, entity_id, op, before, after, actor, on_behalf=None, comment=None):
        if before != after:
            _move(entity, before, after)
        conn.execute(sql.INSERT_TRANSITION, {
            "ticket_id": ticket["id"], "entity": entity, "entity_id": entity_id, "op": op, "from_state": before,
            "to_state": after, "actor": actor, "on_behalf_of": on_behalf, "comment": comment, "ts": self.clock()})

    def _set_ticket(self, conn, ticket, op, actor, state=None, comment=None, on_behalf=None, **values):
        now = self.clock()
        before = ticket["state"]
        values.update(updated_at=now, revision=ticket["revision"] + 1)
        if state is not None and state != before:
            _move("ticket", before, state)
            values["state"] = state
            if state in ("completed", "rejected", "cancelled"):
                values["closed_at"] = now
                values["step"] = None
        conn.execute(sql.UPDATE_TICKET, {"b_ticket": ticket["id"], **values})
        ticket.update(values)
        if state is not None and state != before:
            self._record(conn, ticket, "ticket", ticket["id"], op, before, state, actor, on_behalf, comment)

    def _announce(self, conn, ticket, op, actor, rows=None, **extra):
        data = {"id": ticket["id"], "template": ticket["template"], "state": ticket["state"], "op": op,
                "actor": actor, "applicant": ticket["applicant"], **extra}
        pending = self._current(conn, ticket) if rows is None else _pending_of(ticket, rows)
        if pending:
            data["next_approvers"] = sorted({c for row in pending for c in row["candidates"]})
            data["step"] = pending[0]["step_name"]
        outbox.enqueue(conn, f"saltops/ticket/{ticket['id']}/{op}", data)

    def _body(self, conn, ticket):
        return templates.get(conn, ticket["template"], ticket["template_version"])[1]

    def _pending(self, conn, ticket):
        """The undecided sub-tickets of the ticket's current round, each with the columns the operations use
        (one query; the operations work on them in memory)."""
        rows = conn.execute(sql.SELECT_PENDING, {"b_ticket": ticket["id"], "b_round": ticket["round"]})
        return [{**r._mapping, "state": "pending", "acted_by": None} for r in rows]

    def _current(self, conn, ticket):
        """The pending sub-tickets of the ticket's current step."""
        if ticket["state"] != "in_approval" or ticket["step"] is None:
            return []
        return _pending_of(ticket, self._pending(conn, ticket))

    def _is_ops(self, conn, actor):
        return people.has_role(conn, actor, self.ops_role)

    def _host_exists(self, conn):
        return lambda hostname: hostname in cmdb_repo.get_hosts(conn, [hostname])

    def _open_round(self, conn, ticket, body, actor):
        """Resolve the steps that apply to the form into pending sub-tickets; the first one's index."""
        now = self.clock()
        first, problems, rows = None, [], []
        for index, step in enumerate(body["steps"]):
            if step["when"] is not None and not conditions.holds(step["when"], ticket["form"]):
                continue
            candidates = [c for c in self._resolve(conn, step, ticket["applicant"]) if c != ticket["applicant"]]
            if not candidates:
                problems.append(f"step {step['name']}: no approver ({_who(step)}; an applicant never approves "
                                f"their own ticket)")
                continue
            first = index if first is None else first
            groups = [[c] for c in candidates] if step["mode"] == "all" else [candidates]
            rows.extend({"ticket_id": ticket["id"], "round": ticket["round"], "step": index,
                         "step_name": step["name"], "kind": step["type"], "mode": step["mode"], "candidates": group,
                         "state": "pending", "created_at": now} for group in groups)
        if problems:
            raise ValidationError("the ticket cannot be routed; nothing was changed", problems)
        for row in rows:
            row["id"] = conn.execute(approvals.insert().values(**row)).inserted_primary_key[0]
            row.update(acted_by=None, on_behalf_of=None, acted_at=None, comment=None)
            self._record(conn, ticket, "approval", row["id"], "route", None, "pending", actor)
        return first, rows

    def _resolve(self, conn, step, applicant):
        kind, value = step["approver"], step["value"]
        if kind == "user":
            return [value] if people.exists(conn, value) else []
        if kind == "role":
            return people.members(conn, value)
        if kind == "department_head":
            try:
                head = people.department_head(conn, value)
            except NotFound:
                return []
            return [head] if head else []
        manager = people.manager_of(conn, applicant)
        return [manager] if manager else []

    def _advance(self, conn, ticket, actor, rows):
        """Move the ticket past finished steps (``rows``: the round's sub-tickets as they are now);
        at the end, queue the action (or complete the ticket)."""
        waiting = sorted({r["step"] for r in rows if r["state"] == "pending"})
        if waiting:
            if waiting[0] != ticket["step"]:
                self._set_ticket(conn, ticket, "advance", actor, step=waiting[0])
            return None
        now = self.clock()
        body = self._body(conn, ticket)
        if body["action"] is None:
            self._set_ticket(conn, ticket, "complete", actor, state="completed", approved_at=now)
            return None
        self._set_ticket(conn, ticket, "approved", actor, step=None, approved_at=now)
        return self._queue_action(conn, ticket, body, actor, 1)

    def _queue_action(self, conn, ticket, body, actor, attempt):
        action = body["action"]
        approvers = sorted(r[0] for r in conn.execute(
            sql.SELECT_DECIDERS, {"b_ticket": ticket["id"], "b_round": ticket["round"]}))
        on_behalf = {"applicant": ticket["applicant"], "approvers": approvers}
        if attempt > 1:
            on_behalf["retried_by"] = actor
        row = {"ticket_id": ticket["id"], "attempt": attempt, "fun": action["fun"],
               "args": templates.substitute(action["args"], ticket["form"]),
               "kwargs": templates.substitute(action["kwargs"], ticket["form"]),
               "run_as": ticket["applicant"], "on_behalf": on_behalf, "state": "pending",
               "created_at": self.clock()}
        if action.get("targets"):
            # Resolved against the CMDB when the action is claimed (the hosts of that moment).
            row["kwargs"] = {"__targets__": templates.substitute(action["targets"], ticket["form"]), **row["kwargs"]}
        action_id = conn.execute(actions.insert().values(**row)).inserted_primary_key[0]
        self._record(conn, ticket, "action", action_id, "queue", None, "pending", actor)
        return action_id

    def _then_run(self, actor, ticket_id, action_id):
        """After the commit: run the action the operation queued (if any and if there is an executor); the ticket."""
        if action_id is not None and self.executor is not None:
            self.run_action(action_id)
        return self.show(actor, ticket_id, check=False)

    def _find_own(self, conn, ticket, actor, rows):
        """The pending sub-ticket of the current step ``actor`` may act on, and for whom (delegation)."""
        pending = _pending_of(ticket, rows)
        if ticket["state"] != "in_approval" or not pending:
            state = ticket["state"] if ticket["state"] != "in_approval" else "waiting for its action"
            raise Refused(f"ticket {ticket['id']} is {state}: there is nothing to approve; nothing was changed")
        for row in pending:
            if actor in row["candidates"]:
                return row, None
        principals = people.principals_for(conn, actor, self.clock())
        for row in pending:
            for principal in principals:
                if principal in row["candidates"]:
                    return row, principal
        who = sorted({c for row in pending for c in row["candidates"]})
        raise Refused(f"{actor} is not an approver of the current step ({pending[0]['step_name']}) of ticket "
                      f"{ticket['id']} (approvers: {', '.join(who)}) nor their delegate; nothing was changed")

    def _decide(self, actor, ticket_id, op, state, kind, comment, ticket_state=None):
        if op == "return" and not (comment and str(comment).strip()):
            raise ValidationError("returning a ticket needs a comment for the applicant; nothing was changed")

        def body(conn):
            ticket = self._lock(conn, ticket_id)
            rows = self._pending(conn, ticket) if ticket["state"] == "in_approval" else []
            row, principal = self._find_own(conn, ticket, actor, rows)
            if row["kind"] != kind:
                verb = "confirm" if row["kind"] == "confirm" else "approve"
                if op in ("approve", "confirm"):
                    raise Refused(f"step {row['step_name']} of ticket {ticket['id']} is closed with ticket.{verb}, "
                                  f"not ticket.{op}; nothing was changed")
            decided = {"state": state, "acted_by": actor, "on_behalf_of": principal, "acted_at": self.clock(),
                       "comment": None if comment is None else str(comment)}
            conn.execute(sql.UPDATE_APPROVAL, {"b_approval": row["id"], **decided})
            row.update(decided)
            self._record(conn, ticket, "approval", row["id"], op, "pending", state, actor, principal,
                         None if comment is None else str(comment))
            action_id = None
            if ticket_state is not None:
                self._set_ticket(conn, ticket, op, actor, state=ticket_state, comment=comment, on_behalf=principal,
                                 step=None)
            else:
                self._set_ticket(conn, ticket, op, actor)
                action_id = self._advance(conn, ticket, actor, rows)
            self._announce(conn, ticket, op, actor, rows)
            return _summary(ticket, rows), action_id

        summary, action_id = self._tx(body)
        if action_id is not None:
            summary["action_state"] = "pending"
            if self.executor is not None:
                summary["action_state"] = self.run_action(action_id)
                if summary["action_state"] == "done":
                    summary["state"] = "completed"
        return summary

    # ------------------------------------------------------------------ operations

    def create(self, actor, template, form=None, title=None):
        """A new ticket from the newest version of ``template``, routed to its first approvers."""

        def body(conn):
            version, tbody, _ = templates.get(conn, template)
            values = templates.validate_form(tbody, form, self._host_exists(conn))
            now = self.clock()
            label = str(title or tbody.get("description") or template)[:255]
            row = {"template": template, "template_version": version, "title": label, "applicant": actor,
                   "form": values, "state": "in_approval", "round": 1, "step": None, "revision": 0,
                   "created_at": now, "updated_at": now}
            ticket_id = conn.execute(tickets.insert().values(**row)).inserted_primary_key[0]
            ticket = {"id": ticket_id, **row}
            self._record(conn, ticket, "ticket", ticket_id, "create", None, "in_approval", actor)
            first, rows = self._open_round(conn, ticket, tbody, actor)
            conn.execute(tickets.update().where(tickets.c.id == ticket_id).values(step=first))
            ticket["step"] = first
            action_id = self._advance(conn, ticket, actor, rows)
            self._announce(conn, ticket, "create", actor)
            return ticket_id, action_id

        return self._then_run(actor, *self._tx(body))

    def approve(self, actor, ticket_id, comment=None):
        """Approve the current step as one of its approvers (or their delegate).

        Like every decision (``confirm``, ``reject``, ``return_``) it returns
        where the ticket stands: ``id``, ``template``, ``applicant``, ``state``,
        ``round``, ``step``, ``waiting_for``, ``action_state`` (``show`` has the rest).
        """
        return self._decide(actor, ticket_id, "approve", "approved", "approve", comment)

    def confirm(self, actor, ticket_id, comment=None):
        """Close a ``type: confirm`` step (an acknowledgement) as one of its people."""
        return self._decide(actor, ticket_id, "confirm", "confirmed", "confirm", comment)

    def reject(self, actor, ticket_id, comment=None):
        """Reject the ticket at the current step: it ends ``rejected``."""
        return self._decide(actor, ticket_id, "reject", "rejected", None, comment, ticket_state="rejected")

    def return_(self, actor, ticket_id, comment):
        """Send the ticket back to its applicant with ``comment``; they may resubmit or cancel it."""
        return self._decide(actor, ticket_id, "return", "returned", None, comment, ticket_state="returned")

    def resubmit(self, actor, ticket_id, form=None, comment=None):
        """The applicant sends a returned ticket again (``form``: changed fields); a new approval round starts."""

        def body(conn):
            ticket = self._own_ticket(conn, ticket_id, actor, "resubmit", "returned")
            tbody = self._body(conn, ticket)
            merged = {k: v for k, v in ticket["form"].items() if v is not None}
            merged.update(form or {})
            values = templates.validate_form(tbody, merged, self._host_exists(conn))
            ticket.update(form=values, round=ticket["round"] + 1)
            first, rows = self._open_round(conn, ticket, tbody, actor)
            self._set_ticket(conn, ticket, "resubmit", actor, state="in_approval", comment=comment, form=values,
                             round=ticket["round"], step=first)
            action_id = self._advance(conn, ticket, actor, rows)
            self._announce(conn, ticket, "resubmit", actor)
            return ticket["id"], action_id

        return self._then_run(actor, *self._tx(body))

    def cancel(self, actor, ticket_id, comment=None):
        """The applicant withdraws a ticket in approval or returned (not while its action is due or done;
        a failed action may be cancelled instead of retried)."""

        def body(conn):
            ticket = self._lock(conn, ticket_id)
            self._applicant_only(ticket, actor, "cancel")
            last = self._last_action(conn, ticket["id"])
            failed = last is not None and last["state"] == "execution_error"
            if ticket["state"] not in OPEN or (ticket["approved_at"] is not None and not failed):
                what = "its action is under way" if ticket["state"] in OPEN else f"it is {ticket['state']}"
                raise Refused(f"ticket {ticket['id']} cannot be cancelled: {what}; nothing was changed")
            self._set_ticket(conn, ticket, "cancel", actor, state="cancelled", comment=comment)
            self._announce(conn, ticket, "cancel", actor)
            return ticket["id"]

        return self.show(actor, self._tx(body), check=False)

    def comment(self, actor, ticket_id, text):
        """Add a comment (the applicant, anyone who approves or approved it, their delegates, ``ops``)."""
        if not (isinstance(text, str) and text.strip()):
            raise ValidationError("a comment needs text; nothing was changed")

        def body(conn):
            ticket = self._lock(conn, ticket_id)
            self._may_read(conn, ticket, actor)
            self._set_ticket(conn, ticket, "comment", actor)
            self._record(conn, ticket, "ticket", ticket["id"], "comment", ticket["state"], ticket["state"], actor,
                         comment=text.strip())
            self._announce(conn, ticket, "comment", actor)
            return ticket["id"]

        return self.show(actor, self._tx(body), check=False)

    def delegate(self, actor, to, until, since=None):
        """``to`` approves for the acting user until ``until`` (a time; ISO 8601 or POSIX seconds)."""
        return people.add_delegate(self.store, actor, actor, to, until, self.clock(), since)

    def retry(self, actor, ticket_id):
        """Run a failed action again (role ``ops``): a new attempt, claimed and run once."""

        def body(conn):
            ticket = self._lock(conn, ticket_id)
            if not self._is_ops(conn, actor):
                raise Refused(f"{actor} does not have the role {self.ops_role!r}: only operators retry actions; "
                              f"nothing was changed")
            if ticket["state"] != "in_approval":
                raise Refused(f"ticket {ticket['id']} is {ticket['state']}: its action is not retried; "
                              f"nothing was changed")
            last = self._last_action(conn, ticket["id"])
            if last is None or last["state"] != "execution_error":
                state = "none" if last is None else last["state"]
                raise Refused(f"ticket {ticket['id']}'s action is {state}: only an action that ended in "
                              f"execution_error is retried; nothing was changed")
            self._set_ticket(conn, ticket, "retry", actor)
            action_id = self._queue_action(conn, ticket, self._body(conn, ticket), actor, last["attempt"] + 1)
            self._announce(conn, ticket, "retry", actor)
            return ticket["id"], action_id

        return self._then_run(actor, *self._tx(body))

    def rate(self, actor, ticket_id, score, comment=None):
        """The applicant rates a completed ticket, 1 to 5, once."""
        if isinstance(score, bool) or not isinstance(score, (int, str)) or not str(score).strip().isdigit() \
                or not 1 <= int(score) <= 5:
            raise ValidationError(f"a rating is a whole number from 1 to 5, got {score!r}; nothing was changed")

        def body(conn):
            ticket = self._own_ticket(conn, ticket_id, actor, "rate", "completed")
            if ticket["rating"] is not None:
                raise Refused(f"ticket {ticket['id']} was already rated {ticket['rating']}; nothing was changed")
            self._set_ticket(conn, ticket, "rate", actor, rating=int(score), rating_comment=comment)
            self._record(conn, ticket, "ticket", ticket["id"], "rate", "completed", "completed", actor,
                         comment=f"{int(score)}/5" + (f": {comment}" if comment else ""))
            self._announce(conn, ticket, "rate", actor, rating=int(score))
            return ticket["id"]

        return self.show(actor, self._tx(body), check=False)

    # ------------------------------------------------------------------ the action

    def run_action(self, action_id):
        """Claim the pending action ``action_id`` and run it through the executor, once.

        Returns the action's final state, or ``None`` when another caller had
        claimed it already (or it is not pending).
        """
        if self.executor is None:
            raise SaltOpsError("no executor was given to run ticket actions")
        now = self.clock()

        def claim(conn):
            done = conn.execute(actions.update().where(
                (actions.c.id == action_id) & (actions.c.state == "pending") & actions.c.claimed_by.is_(None)
            ).values(claimed_by=self.owner[:255], claimed_at=now))
            if done.rowcount != 1:
                return None
            row = dict(conn.execute(sa.select(actions).where(actions.c.id == action_id)).first()._mapping)
            kwargs = dict(row["kwargs"])
            spec = kwargs.pop("__targets__", None)
            hostnames = None
            if spec is not None:
                filters = cmdb_targets.parse(spec)
                wanted = filters.pop("host", None)
                hostnames = [h["hostname"] for h in cmdb_repo.list_hosts(
                    conn, **{k: ",".join(v) for k, v in filters.items()})]
                if wanted is not None:
                    hostnames = [h for h in hostnames if h in wanted]
                conn.execute(actions.update().where(actions.c.id == action_id).values(
                    kwargs={**kwargs, "__targets__": spec, "__hosts__": hostnames}))
            return {"fun": row["fun"], "args": row["args"], "kwargs": kwargs, "run_as": row["run_as"],
                    "targets": hostnames, "ticket_id": row["ticket_id"], "action_id": action_id,
                    "on_behalf": row["on_behalf"]}

        call = self._tx(claim)
        if call is None:
            return None
        if call["targets"] == []:
            outcome = {"ok": False, "retcode": 1, "output": "the action's CMDB targets match no host"}
        else:
            try:
                outcome = self.executor(call)
            except Exception as err:  # noqa: BLE001  (any failure of the call is the action's execution error)
                log.warning("ticket %s: the action %s failed: %s", call["ticket_id"], call["fun"], err)
                outcome = {"ok": False, "retcode": 1, "output": f"{type(err).__name__}: {err}"}
        ok = bool(outcome.get("ok"))
        state = "done" if ok else "execution_error"
        output = str(outcome.get("output") or "")[:OUTPUT_LIMIT]
        # What the executor tells beside ok and output (a deploy's id and status), kept on the action.
        extra = outcome.get("result") if isinstance(outcome.get("result"), dict) else {}

        def finish(conn):
            ticket = self._lock(conn, call["ticket_id"])
            conn.execute(actions.update().where(actions.c.id == action_id).values(
                state=state, finished_at=self.clock(), retcode=outcome.get("retcode"), output=output,
                result={**extra, "ok": ok, "retcode": outcome.get("retcode")},
                error=None if ok else output.splitlines()[0][:1000] if output else "failed"))
            self._record(conn, ticket, "action", action_id, "execute", "pending", state, call["run_as"],
                         comment=f"{call['fun']} as {call['run_as']} on behalf of "
                                 f"{', '.join([call['on_behalf']['applicant'], *call['on_behalf']['approvers']])}")
            if ok:
                self._set_ticket(conn, ticket, "complete", call["run_as"], state="completed")
            else:
                self._set_ticket(conn, ticket, "execution_error", call["run_as"])
            self._announce(conn, ticket, "done" if ok else "execution_error", call["run_as"], action=action_id)

        self._tx(finish)
        return state

    def pending_actions(self):
        """Actions due and never claimed (a master that stopped between approval and claim leaves them)."""
        with self.store.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(actions.c.id).where(
                (actions.c.state == "pending") & actions.c.claimed_by.is_(None)).order_by(actions.c.id))]

    def _last_action(self, conn, ticket_id):
        row = conn.execute(sa.select(actions).where(actions.c.ticket_id == ticket_id)
                           .order_by(actions.c.attempt.desc()).limit(1)).first()
        return None if row is None else dict(row._mapping)

    # ------------------------------------------------------------------ deadlines (saltops.tickets.deadlines)

    def escalate(self, actor, ticket_id, approval_id, add, comment):
        """Let ``add`` act on the late pending sub-ticket ``approval_id`` too, once.

        Recorded as the sub-ticket's ``escalate`` transition (``pending`` to
        ``pending``) with ``comment``, even when nobody is added.  Returns the
        people added, or None when the sub-ticket is no longer pending on the
        current step or was escalated before.
        """

        def body(conn):
            ticket = self._lock(conn, ticket_id)
            row = conn.execute(sa.select(approvals).where(approvals.c.id == approval_id)).first()
            if row is None or row.state != "pending" or ticket["state"] != "in_approval" \
                    or row.round != ticket["round"] or row.step != ticket["step"]:
                return None
            if conn.execute(sa.select(transitions.c.id).where(
                    (transitions.c.entity == "approval") & (transitions.c.entity_id == approval_id)
                    & (transitions.c.op == "escalate"))).first() is not None:
                return None
            added = [u for u in dict.fromkeys(add) if u not in row.candidates and u != ticket["applicant"]]
            if added:
                conn.execute(approvals.update().where(approvals.c.id == approval_id).values(
                    candidates=[*row.candidates, *added]))
            self._set_ticket(conn, ticket, "escalate", actor)
            self._record(conn, ticket, "approval", approval_id, "escalate", "pending", "pending", actor,
                         comment=comment)
            self._announce(conn, ticket, "escalate", actor, added=added)
            return added

        return self._tx(body)

    # ------------------------------------------------------------------ reading

    def _own_ticket(self, conn, ticket_id, actor, op, state):
        """The locked ticket, when ``actor`` applied for it and it is in ``state``; else a refusal."""
        ticket = self._lock(conn, ticket_id)
        self._applicant_only(ticket, actor, op)
        if ticket["state"] != state:
            raise Refused(f"ticket {ticket['id']} is {ticket['state']}; only a {state} ticket can be given to "
                          f"{op}; nothing was changed")
        return ticket

    def _applicant_only(self, ticket, actor, op):
        if ticket["applicant"] != actor:
            raise Refused(f"only the applicant ({ticket['applicant']}) may {op} ticket {ticket['id']}; "
                          f"nothing was changed")

    def _may_read(self, conn, ticket, actor):
        if actor == ticket["applicant"] or self._is_ops(conn, actor):
            return
        involved = {c for row in conn.execute(sa.select(approvals.c.candidates).where(
            approvals.c.ticket_id == ticket["id"])) for c in row[0]}
        if actor in involved or involved & set(people.principals_for(conn, actor, self.clock())):
            return
        raise Refused(f"{actor} may not read ticket {ticket['id']}: not its applicant, an approver, a delegate "
                      f"or an operator")

    def show(self, actor, ticket_id, check=True):
        """A ticket with its sub-tickets, actions and transitions (for those who may read it)."""
        ticket_id = _ticket_id(ticket_id)
        with self.store.connect() as conn:
            row = conn.execute(sa.select(tickets).where(tickets.c.id == ticket_id)).first()
            if row is None:
                raise NotFound(f"no ticket {ticket_id}")
            ticket = dict(row._mapping)
            if check:
                self._may_read(conn, ticket, actor)
            ticket["approvals"] = [dict(r._mapping) for r in conn.execute(
                sa.select(approvals).where(approvals.c.ticket_id == ticket_id).order_by(approvals.c.id))]
            ticket["actions"] = [dict(r._mapping) for r in conn.execute(
                sa.select(actions).where(actions.c.ticket_id == ticket_id).order_by(actions.c.attempt))]
            ticket["transitions"] = [dict(r._mapping) for r in conn.execute(
                sa.select(transitions).where(transitions.c.ticket_id == ticket_id).order_by(transitions.c.id))]
            pending = self._current(conn, ticket)
        ticket["waiting_for"] = sorted({c for r in pending for c in r["candidates"]})
        last = ticket["actions"][-1] if ticket["actions"] else None
        ticket["action_state"] = None if last is None else last["state"]
        return ticket

    def list(self, actor, scope="mine", state=None, template=None, limit=100):
        """Tickets, newest first: ``mine`` (applied for), ``to_approve`` (waiting for the actor or whom
        they stand in for), ``all`` (role ``ops``); optionally one ``state`` or ``template``."""
        if scope not in ("mine", "to_approve", "all"):
            raise ValidationError(f"scope must be mine, to_approve or all, got {scope!r}")
        if state is not None and state not in TICKET_STATES:
            raise ValidationError(f"unknown ticket state {state!r} (known: {', '.join(TICKET_STATES)})")
        if isinstance(limit, bool) or not str(limit).strip().isdigit() or not 1 <= int(limit) <= 1000:
            raise ValidationError(f"limit must be a whole number from 1 to 1000, got {limit!r}")
        limit = int(limit)
        cols = [tickets.c.id, tickets.c.template, tickets.c.template_version, tickets.c.title, tickets.c.applicant,
                tickets.c.state, tickets.c.created_at, tickets.c.updated_at]
        with self.store.connect() as conn:
            query = sa.select(*cols).order_by(tickets.c.id.desc()).limit(limit)
            if state:
                query = query.where(tickets.c.state == state)
            if template:
                query = query.where(tickets.c.template == template)
            if scope == "mine":
                query = query.where(tickets.c.applicant == actor)
            elif scope == "all":
                if not self._is_ops(conn, actor):
                    raise Refused(f"{actor} does not have the role {self.ops_role!r}: listing every ticket is "
                                  f"for operators")
            else:
                me = {actor, *people.principals_for(conn, actor, self.clock())}
                waiting = sa.select(approvals.c.ticket_id, approvals.c.candidates).join(
                    tickets, (tickets.c.id == approvals.c.ticket_id) & (tickets.c.round == approvals.c.round)
                    & (tickets.c.step == approvals.c.step)).where(
                    (approvals.c.state == "pending") & (tickets.c.state == "in_approval"))
                ids = sorted({r.ticket_id for r in conn.execute(waiting) if me & set(r.candidates)})
                if not ids:
                    return []
                query = query.where(tickets.c.id.in_(ids))
            return [dict(r._mapping) for r in conn.execute(query)]

    def report(self, actor, since=None):
        """Counts by template and state, time to approve and satisfaction (role ``ops``)."""
        with self.store.connect() as conn:
            if not self._is_ops(conn, actor):
                raise Refused(f"{actor} does not have the role {self.ops_role!r}: reports are for operators")
            query = sa.select(tickets.c.template, tickets.c.state, tickets.c.created_at, tickets.c.approved_at,
                              tickets.c.rating)
            if since is not None:
                query = query.where(tickets.c.created_at >= float(since))
            rows = conn.execute(query).all()
        return summarise(rows)


def _pending_of(ticket, rows):
    """The pending sub-tickets of the ticket's current step, among the round's ``rows``."""
    if ticket["state"] != "in_approval" or ticket["step"] is None:
        return []
    return [r for r in rows if r["step"] == ticket["step"] and r["state"] == "pending"]


def _summary(ticket, rows):
    """What a decision returns: where the ticket stands (``ticket.show`` gives the whole ticket)."""
    pending = _pending_of(ticket, rows)
    return {"id": ticket["id"], "template": ticket["template"], "applicant": ticket["applicant"],
            "state": ticket["state"], "round": ticket["round"],
            "step": pending[0]["step_name"] if pending else None,
            "waiting_for": sorted({c for r in pending for c in r["candidates"]}), "action_state": None}


def summarise(rows):
    """Per template: ``count``, ``states``, approval times (mean, median, max seconds), ratings (mean, count)."""
    out = {}
    for row in rows:
        item = out.setdefault(row.template, {"count": 0, "states": {}, "_waits": [], "_ratings": []})
        item["count"] += 1
        item["states"][row.state] = item["states"].get(row.state, 0) + 1
        if row.approved_at is not None:
            item["_waits"].append(row.approved_at - row.created_at)
        if row.rating is not None:
            item["_ratings"].append(row.rating)
    for item in out.values():
        waits = sorted(item.pop("_waits"))
        ratings = item.pop("_ratings")
        item["time_to_approve"] = None if not waits else {
            "count": len(waits), "mean": round(sum(waits) / len(waits), 3),
            "median": round(waits[len(waits) // 2], 3), "max": round(waits[-1], 3)}
        item["satisfaction"] = None if not ratings else {
            "count": len(ratings), "mean": round(sum(ratings) / len(ratings), 2)}
    return out


def _ticket_id(value):
    if isinstance(value, bool):
        raise ValidationError(f"a ticket id is a number, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"a ticket id is a number, got {value!r}") from None


def _who(step):
    if step["approver"] == "manager":
        return "the applicant has no manager"
    if step["approver"] == "role":
        return f"nobody else has the role {step['value']!r}"
    if step["approver"] == "department_head":
        return f"department {step['value']!r} has no head"
    return f"user {step['value']!r} is unknown"


__all__ = ["Workflow", "Refused", "IllegalMove", "TICKET_STATES", "APPROVAL_STATES", "ACTION_STATES",
           "summarise"]
