"""The workflow as its users see it: who may do what, what each step does, the action run once."""

import pytest
import sqlalchemy as sa
import yaml

from saltops.errors import NotFound, ValidationError
from saltops.store.schema import event_outbox
from saltops.tickets import templates
from saltops.tickets.schema import tickets
from saltops.tickets.workflow import Refused, Workflow
from tests.support import tickets_kit

PROD = {"host": "web1.example.com", "env": "prod", "reason": "disk swap"}
DEV = {"host": "web1.example.com", "env": "dev"}


@pytest.fixture
def flow(store, executor, clock):
    return Workflow(store, executor=executor, clock=clock)


def snapshot(store, ticket_id):
    with store.connect() as conn:
        return dict(conn.execute(sa.select(tickets).where(tickets.c.id == ticket_id)).first()._mapping)


def test_prod_needs_the_manager_then_every_ops_member_and_runs_the_action_once(flow, executor, store):
    t = flow.create("alice", "maint", PROD)
    assert (t["state"], t["waiting_for"]) == ("in_approval", ["dan"])
    t = flow.approve("dan", t["id"], comment="fine")
    assert t["waiting_for"] == ["olga", "oscar"]
    t = flow.approve("olga", t["id"])
    assert t["waiting_for"] == ["oscar"] and executor.calls == []
    decided = flow.approve("oscar", t["id"])
    assert (decided["state"], decided["action_state"], decided["waiting_for"]) == ("completed", "done", [])
    t = flow.show("alice", t["id"])
    assert executor.calls == [{"fun": "cmdb.update", "args": ["web1.example.com"], "kwargs": {"status": "maintenance"},
                               "run_as": "alice", "targets": None, "ticket_id": t["id"],
                               "action_id": t["actions"][0]["id"],
                               "on_behalf": {"applicant": "alice", "approvers": ["dan", "olga", "oscar"]}}]
    assert t["actions"][0]["output"] == "cmdb.update ok"
    moves = [(x["entity"], x["op"], x["from_state"], x["to_state"], x["actor"]) for x in t["transitions"]]
    assert moves[0] == ("ticket", "create", None, "in_approval", "alice")
    assert ("approval", "approve", "pending", "approved", "dan") in moves
    assert moves[-1] == ("ticket", "complete", "in_approval", "completed", "alice")
    with store.connect() as conn:
        tags = [r[0] for r in conn.execute(sa.select(event_outbox.c.tag).where(
            event_outbox.c.tag.like(f"saltops/ticket/{t['id']}/%")))]
    assert tags[0] == f"saltops/ticket/{t['id']}/create" and tags[-1] == f"saltops/ticket/{t['id']}/done"


def test_a_condition_that_does_not_hold_skips_its_step(flow):
    t = flow.create("alice", "maint", DEV)
    assert flow.approve("dan", t["id"])["state"] == "completed"
    assert [a["step_name"] for a in flow.show("alice", t["id"])["approvals"]] == ["lead"]


@pytest.mark.parametrize("op, args", [("approve", ()), ("reject", ()), ("return_", ("why?",))])
def test_only_the_current_steps_approvers_decide_and_a_refusal_changes_nothing(flow, store, op, args):
    t = flow.create("alice", "maint", PROD)
    before = snapshot(store, t["id"])
    for outsider in ("alice", "olga", "carol"):
        with pytest.raises(Refused, match="not an approver of the current step"):
            getattr(flow, op)(outsider, t["id"], *args)
    assert snapshot(store, t["id"]) == before
    assert len(flow.show("alice", t["id"])["transitions"]) == len(t["transitions"])


def test_an_active_delegate_approves_on_behalf_until_the_delegation_ends(flow, clock):
    flow.delegate("dan", "bob", clock() + 3600)
    t = flow.create("alice", "maint", PROD)
    assert [x["id"] for x in flow.list("bob", "to_approve")] == [t["id"]]
    flow.approve("bob", t["id"])
    lead = next(a for a in flow.show("alice", t["id"])["approvals"] if a["step_name"] == "lead")
    assert (lead["acted_by"], lead["on_behalf_of"]) == ("bob", "dan")
    t2 = flow.create("alice", "maint", PROD)
    clock.now += 3601
    with pytest.raises(Refused):
        flow.approve("bob", t2["id"])


def test_return_resubmit_with_a_changed_form_starts_a_new_round(flow):
    t = flow.create("alice", "maint", PROD)
    with pytest.raises(ValidationError, match="needs a comment"):
        flow.return_("dan", t["id"], "")
    t = flow.return_("dan", t["id"], "use dev first")
    assert t["state"] == "returned" and t["waiting_for"] == []
    with pytest.raises(Refused, match="only the applicant"):
        flow.resubmit("bob", t["id"], {"env": "dev"})
    with pytest.raises(ValidationError, match="env: 'qa' is not one of"):
        flow.resubmit("alice", t["id"], {"env": "qa"})
    t = flow.resubmit("alice", t["id"], {"env": "dev"})
    assert (t["state"], t["round"], t["form"]["env"], t["waiting_for"]) == ("in_approval", 2, "dev", ["dan"])
    assert flow.approve("dan", t["id"])["state"] == "completed"


def test_reject_ends_the_ticket_and_nothing_more_can_be_decided(flow, executor):
    t = flow.create("alice", "maint", PROD)
    t = flow.approve("dan", t["id"])
    assert flow.reject("olga", t["id"], "freeze")["state"] == "rejected"
    assert flow.show("alice", t["id"])["closed_at"] is not None
    for actor in ("oscar", "dan"):
        with pytest.raises(Refused, match="is rejected"):
            flow.approve(actor, t["id"])
    with pytest.raises(Refused):
        flow.cancel("alice", t["id"])
    assert executor.calls == []


def test_cancel_is_the_applicants_while_in_approval(flow):
    t = flow.create("alice", "maint", PROD)
    with pytest.raises(Refused, match="only the applicant"):
        flow.cancel("dan", t["id"])
    assert flow.cancel("alice", t["id"])["state"] == "cancelled"
    with pytest.raises(Refused):
        flow.approve("dan", t["id"])


def test_a_failed_action_is_never_run_again_except_by_an_operators_retry(flow, executor):
    executor.failing = True
    t = flow.create("alice", "maint", DEV)
    assert flow.approve("dan", t["id"])["action_state"] == "execution_error"
    t = flow.show("alice", t["id"])
    assert (t["state"], t["action_state"]) == ("in_approval", "execution_error")
    assert "host is locked" in t["actions"][0]["error"]
    with pytest.raises(Refused, match="nothing to approve"):
        flow.approve("dan", t["id"])
    assert flow.pending_actions() == [] and len(executor.calls) == 1
    with pytest.raises(Refused, match="role 'ops'"):
        flow.retry("alice", t["id"])
    executor.failing = False
    t = flow.retry("olga", t["id"])
    assert (t["state"], [a["state"] for a in t["actions"]]) == ("completed", ["execution_error", "done"])
    assert t["actions"][1]["on_behalf"]["retried_by"] == "olga"
    with pytest.raises(Refused, match="is completed: its action is not retried"):
        flow.retry("olga", t["id"])
    assert len(executor.calls) == 2


def test_a_ticket_cancelled_after_its_action_failed_is_not_retried(flow, executor):
    executor.failing = True
    t = flow.create("alice", "maint", DEV)
    flow.approve("dan", t["id"])
    assert flow.cancel("alice", t["id"])["state"] == "cancelled"
    with pytest.raises(Refused, match="is cancelled: its action is not retried"):
        flow.retry("olga", t["id"])
    assert len(executor.calls) == 1


def test_an_action_is_claimed_once_even_when_asked_twice(store, executor, clock):
    quiet = Workflow(store, executor=None, clock=clock)
    t = quiet.create("alice", "maint", DEV)
    quiet.approve("dan", t["id"])
    [action_id] = quiet.pending_actions()
    runner = Workflow(store, executor=executor, clock=clock)
    assert runner.run_action(action_id) == "done"
    assert runner.run_action(action_id) is None
    assert len(executor.calls) == 1


def test_rating_comments_reading_and_listing(flow):
    t = flow.create("alice", "maint", DEV)
    with pytest.raises(Refused, match="only a completed ticket can be given to rate"):
        flow.rate("alice", t["id"], 5)
    flow.comment("dan", t["id"], "looking at it")
    with pytest.raises(Refused, match="may not read"):
        flow.comment("carol", t["id"], "hi")
    with pytest.raises(Refused, match="may not read"):
        flow.show("carol", t["id"])
    assert flow.show("olga", t["id"])["id"] == t["id"]  # operators read everything
    flow.approve("dan", t["id"])
    with pytest.raises(ValidationError):
        flow.rate("alice", t["id"], 6)
    with pytest.raises(Refused, match="only the applicant"):
        flow.rate("dan", t["id"], 5)
    t = flow.rate("alice", t["id"], "4", "quick")
    assert (t["rating"], t["rating_comment"]) == (4, "quick")
    with pytest.raises(Refused, match="already rated"):
        flow.rate("alice", t["id"], 5)
    assert [x["id"] for x in flow.list("alice")] == [t["id"]]
    assert flow.list("bob") == [] and flow.list("dan", "to_approve") == []
    with pytest.raises(Refused):
        flow.list("alice", "all")
    for bad in ("many", 0, True):
        with pytest.raises(ValidationError, match="limit"):
            flow.list("alice", limit=bad)
    with pytest.raises(ValidationError, match="scope"):
        flow.list("alice", "everything")
    assert [x["id"] for x in flow.list("olga", "all", state="completed")] == [t["id"]]


def test_report_counts_times_and_satisfaction_for_operators_only(flow, clock):
    for _ in range(2):
        t = flow.create("alice", "maint", DEV)
        clock.now += 60
        flow.approve("dan", t["id"])
        flow.rate("alice", t["id"], 4)
    flow.cancel("bob", flow.create("bob", "maint", PROD)["id"])
    with pytest.raises(Refused):
        flow.report("alice")
    report = flow.report("olga")["maint"]
    assert report["count"] == 3 and report["states"] == {"completed": 2, "cancelled": 1}
    assert report["time_to_approve"]["count"] == 2 and report["time_to_approve"]["mean"] == pytest.approx(60)
    assert report["satisfaction"] == {"count": 2, "mean": 4.0}


def test_tickets_keep_their_template_version(flow, store):
    t = flow.create("alice", "maint", DEV)
    doc = yaml.safe_load(tickets_kit.MAINT)
    doc["steps"] = [{"name": "ops", "role": "ops"}]
    templates.save(store, "tester", doc, 0)
    # The old ticket still follows version 1 (the manager), a new one version 2 (ops).
    assert flow.approve("dan", t["id"])["state"] == "completed"
    t2 = flow.create("alice", "maint", DEV)
    assert t2["template_version"] == 2 and t2["waiting_for"] == ["olga", "oscar"]


def test_a_ticket_nobody_can_approve_is_refused_at_creation(flow, store):
    with pytest.raises(ValidationError, match="the applicant has no manager"):
        flow.create("carol", "maint", DEV)
    with pytest.raises(NotFound):
        flow.create("alice", "nosuch", DEV)
    with pytest.raises(ValidationError, match="host 'ghost' is not in the CMDB"):
        flow.create("alice", "maint", {"host": "ghost", "env": "dev"})
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tickets)).scalar() == 0
