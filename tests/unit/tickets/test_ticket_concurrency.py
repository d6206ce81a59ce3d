"""Approvers acting at the same moment on MariaDB: one consistent result, the action run once."""

import threading
import time

import pytest
import sqlalchemy as sa

from saltops.errors import SaltOpsError
from saltops.org import people
from saltops.tickets import templates
from saltops.tickets.schema import approvals, transitions
from saltops.tickets.workflow import Workflow
from tests.support import tickets_kit

pytestmark = pytest.mark.mysql
SIZE = 20


@pytest.fixture
def crowd(backend_stores):
    store = backend_stores("mysql", "tickets_race")
    tickets_kit.empty(store)
    people.load(store, "tester", tickets_kit.crowd_org(SIZE), time.time())
    for mode in ("any", "all"):
        templates.save(store, "tester", tickets_kit.crowd_template(mode), time.time())
    return store


def all_at_once(store, executor, ticket_id, op="approve"):
    """Every crowd member calls ``op`` on the ticket at the same moment, each through its own Workflow."""
    barrier = threading.Barrier(SIZE)
    outcomes = {}

    def act(name):
        flow = Workflow(store, executor=executor)
        barrier.wait()
        try:
            getattr(flow, op)(name, ticket_id)
            outcomes[name] = "ok"
        except SaltOpsError as err:
            outcomes[name] = f"refused: {err}"

    threads = [threading.Thread(target=act, args=(f"c{n:02d}",)) for n in range(SIZE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return outcomes


def test_twenty_approvers_of_an_any_step_at_once_one_wins_and_the_action_runs_once(crowd):
    executor = tickets_kit.CountingExecutor()
    ticket = Workflow(crowd).create("alice", "crowd-any", {"host": "web1.example.com"})
    outcomes = all_at_once(crowd, executor, ticket["id"])
    winners = [name for name, result in outcomes.items() if result == "ok"]
    assert len(winners) == 1, outcomes
    assert all("nothing to approve" in r for n, r in outcomes.items() if n not in winners)
    final = Workflow(crowd).show("alice", ticket["id"])
    assert final["state"] == "completed"
    assert [a["acted_by"] for a in final["approvals"]] == winners
    assert list(executor.runs.values()) == [1]


def test_twenty_countersigners_at_once_all_count_and_the_action_runs_once_after_the_last(crowd):
    executor = tickets_kit.CountingExecutor()
    ticket = Workflow(crowd).create("alice", "crowd-all", {"host": "web1.example.com"})
    outcomes = all_at_once(crowd, executor, ticket["id"])
    assert set(outcomes.values()) == {"ok"}, outcomes
    final = Workflow(crowd).show("alice", ticket["id"])
    assert final["state"] == "completed" and final["action_state"] == "done"
    assert sorted(a["state"] for a in final["approvals"]) == ["approved"] * SIZE
    assert list(executor.runs.values()) == [1]
    with crowd.connect() as conn:
        decided = conn.execute(sa.select(sa.func.count()).select_from(transitions).where(
            (transitions.c.ticket_id == ticket["id"]) & (transitions.c.op == "approve"))).scalar()
        pending = conn.execute(sa.select(sa.func.count()).select_from(approvals).where(
            (approvals.c.ticket_id == ticket["id"]) & (approvals.c.state == "pending"))).scalar()
    assert (decided, pending) == (SIZE, 0)


def test_approve_and_reject_racing_give_one_outcome(crowd):
    executor = tickets_kit.CountingExecutor()
    ticket = Workflow(crowd).create("alice", "crowd-any", {"host": "web1.example.com"})
    barrier = threading.Barrier(2)
    results = {}

    def act(name, op):
        flow = Workflow(crowd, executor=executor)
        barrier.wait()
        try:
            results[op] = getattr(flow, op)(name, ticket["id"])["state"]
        except SaltOpsError as err:
            results[op] = f"refused: {err}"

    threads = [threading.Thread(target=act, args=("c00", "approve")), threading.Thread(target=act, args=("c01", "reject"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    final = Workflow(crowd).show("alice", ticket["id"])
    assert final["state"] in ("completed", "rejected")
    assert sum(str(r).startswith("refused") for r in results.values()) == 1, results
    assert sum(executor.runs.values()) == (1 if final["state"] == "completed" else 0)
