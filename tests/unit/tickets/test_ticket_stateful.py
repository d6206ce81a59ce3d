"""Any sequence of calls, by anyone: the workflow never reaches an invalid state and never runs an action twice.

Hypothesis drives the operations of :class:`Workflow` with random users,
tickets and arguments (most of them refused) against a real store, and after
every step checks the invariants below against the tables.
"""

import collections

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from saltops.errors import SaltOpsError
from saltops.tickets import workflow as wf
from saltops.tickets.schema import actions, approvals, tickets, transitions
from tests.support import tickets_kit

USERS = ["alice", "bob", "carol", "dan", "olga", "oscar"]
OPS = ["approve", "reject", "return_", "confirm", "cancel", "resubmit", "retry", "rate", "comment"]
MOVES = {"ticket": wf.TICKET_MOVES, "approval": wf.APPROVAL_MOVES, "action": wf.ACTION_MOVES}


class Calls(tickets_kit.Executor):
    """Counts runs per ticket; while an action runs, another caller tries to run it too (and must not)."""

    flow = None

    def __call__(self, call):
        self.per_ticket[call["ticket_id"]] += 1
        if self.flow.run_action(call["action_id"]) is not None:
            self.double_runs.append(call["action_id"])
        return super().__call__(call)


class WorkflowMachine(RuleBasedStateMachine):
    store = None  # set by the test

    tickets = Bundle("tickets")

    def __init__(self):
        super().__init__()
        from tests.unit.tickets.conftest import prepare

        prepare(self.store)
        self.executor = Calls()
        self.executor.per_ticket = collections.Counter()
        self.executor.double_runs = []
        self.flow = wf.Workflow(self.store, executor=self.executor)
        self.executor.flow = self.flow

    def rows(self, table):
        with self.store.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(table))]

    @rule(target=tickets, applicant=st.sampled_from(["alice", "bob"]), env=st.sampled_from(["dev", "prod"]))
    def create(self, applicant, env):
        return self.flow.create(applicant, "maint", {"host": "web1.example.com", "env": env})["id"]

    @rule(ticket=tickets, actor=st.sampled_from(USERS), op=st.sampled_from(OPS),
          env=st.sampled_from(["dev", "prod", "qa"]), score=st.integers(0, 6))
    def act_as_anyone(self, ticket, actor, op, env, score):
        self.act(ticket, actor, op, env, score)

    def act(self, ticket, actor, op, env, score):
        before = (self.rows(tickets), self.rows(approvals), self.rows(actions), len(self.rows(transitions)))
        args = {"return_": ("why",), "resubmit": ({"env": env},), "rate": (score,), "comment": ("note",)}.get(op, ())
        try:
            getattr(self.flow, op)(actor, ticket, *args)
        except (wf.Refused, SaltOpsError) as err:
            assert not isinstance(err, wf.IllegalMove), err
            after = (self.rows(tickets), self.rows(approvals), self.rows(actions), len(self.rows(transitions)))
            assert after == before, f"{op} by {actor} was refused ({err}) but changed the store"

    @rule(ticket=tickets, op=st.sampled_from(["approve", "approve", "confirm", "reject", "return_"]),
          pick=st.integers(0, 3))
    def decide_as_an_approver(self, ticket, op, pick):
        # Random actors are mostly refused: this rule acts as someone the ticket waits for, so that
        # sequences reach approval, the action, failures and retries.
        waiting = self.flow.show("olga", ticket)["waiting_for"]
        if waiting:
            actor = waiting[pick % len(waiting)]
            self.act(ticket, actor, op, "dev", 3)
        else:
            self.act(ticket, "olga", "retry", "dev", 3)

    @rule(ticket=tickets, op=st.sampled_from(["cancel", "resubmit", "rate", "comment"]),
          env=st.sampled_from(["dev", "prod"]), score=st.integers(1, 5))
    def applicant_acts(self, ticket, op, env, score):
        self.act(ticket, self.flow.show("olga", ticket)["applicant"], op, env, score)

    @rule(ticket=tickets)
    def run_again(self, ticket):
        # A second master (or a reactor) trying to run the ticket's actions: never a second run.
        for row in self.rows(actions):
            if row["ticket_id"] == ticket:
                assert self.flow.run_action(row["id"]) is None

    @rule(failing=st.booleans())
    def salt_fails(self, failing):
        self.executor.failing = failing

    @rule(delegate=st.sampled_from(USERS), principal=st.sampled_from(["dan", "olga"]))
    def delegate(self, delegate, principal):
        try:
            self.flow.delegate(principal, delegate, self.flow.clock() + 3600)
        except SaltOpsError:
            pass

    @invariant()
    def states_are_valid_and_consistent(self):
        assert self.executor.double_runs == [], "an action in flight was run a second time"
        ticket_rows = self.rows(tickets)
        approval_rows = self.rows(approvals)
        action_rows = self.rows(actions)
        by_ticket = collections.defaultdict(list)
        for row in action_rows:
            assert row["state"] in wf.ACTION_STATES
            by_ticket[row["ticket_id"]].append(row)
        for row in approval_rows:
            assert row["state"] in wf.APPROVAL_STATES
        for t in ticket_rows:
            assert t["state"] in wf.TICKET_STATES
            mine = sorted(by_ticket[t["id"]], key=lambda a: a["attempt"])
            claimed = [a for a in mine if a["claimed_by"] is not None]
            # Each action attempt ran at most once, and only attempts that were claimed ran.
            assert self.executor.per_ticket[t["id"]] == len(claimed)
            assert sum(a["state"] == "done" for a in mine) <= 1
            assert all(a["state"] == "execution_error" for a in mine[:-1])
            if t["state"] == "completed":
                assert mine and mine[-1]["state"] == "done"
            if mine and mine[-1]["state"] == "done":
                assert t["state"] == "completed"
            if t["state"] in ("completed", "rejected", "cancelled"):
                assert t["step"] is None and t["closed_at"] is not None
                # Nothing runs for a closed ticket.
                assert all(a["created_at"] <= t["closed_at"] for a in mine), (t, mine)
            if t["state"] == "in_approval" and t["step"] is not None:
                current = [a for a in approval_rows if a["ticket_id"] == t["id"] and a["round"] == t["round"]
                           and a["step"] == t["step"]]
                assert any(a["state"] == "pending" for a in current)
                assert not mine
            if t["state"] == "in_approval" and t["step"] is None:
                # Every step is decided: the action is due, failed, or runs.
                assert mine and t["approved_at"] is not None
                assert all(a["state"] in ("approved", "confirmed") for a in approval_rows
                           if a["ticket_id"] == t["id"] and a["round"] == t["round"])
        for row in self.rows(transitions):
            if row["from_state"] != row["to_state"]:
                assert (row["from_state"], row["to_state"]) in MOVES[row["entity"]], row


def test_no_sequence_of_calls_breaks_the_workflow(backend_stores):
    WorkflowMachine.store = backend_stores("sqlite", "tickets_stateful")
    run_state_machine_as_test(WorkflowMachine, settings=settings(
        max_examples=40, stateful_step_count=25, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))


@pytest.mark.parametrize("entity, before, after", [("ticket", "completed", "in_approval"),
                                                   ("approval", "approved", "pending"),
                                                   ("action", "done", "pending")])
def test_the_machine_refuses_moves_it_never_makes(entity, before, after):
    with pytest.raises(wf.IllegalMove):
        wf._move(entity, before, after)
