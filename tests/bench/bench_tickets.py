"""Benchmark: ticket transitions per second on MariaDB with 20 approvers acting at once.

Run with:

    .venv/bin/python -m pytest tests/bench/bench_tickets.py -s -p no:cacheprovider

Environment: ``BENCH_TICKETS`` (tickets, default 100), ``BENCH_APPROVERS``
(concurrent approvers, default 20), ``BENCH_DRIVER`` (``pymysql``, the
default, or ``mysqldb``: the C driver of the ``mysql`` extra, mysqlclient).

A fresh MariaDB database; ``BENCH_APPROVERS`` people with the role ``crowd``
and a template whose one step is a countersign (``mode: all``) by that role,
so every approver must approve every ticket; the action (``cmdb.update``) is
handed to an executor that only counts runs, so the figure is the workflow's
and the database's, not Salt's.  Each approver runs in its own thread with
its own :class:`~saltops.tickets.workflow.Workflow` and approves every ticket,
in its own shuffled order, through :meth:`Workflow.approve` (the function
behind ``ticket.approve``, including the ticket it returns).

Printed: approvals/s and transitions/s (every row of ``ticket_transitions``
written during the run), against a baseline of bare transactions doing the
same row lock and one insert with the same threads; the CPU this process
used per approval and how many cores that kept busy (the threads share one
interpreter lock, so near 1.0 means Python, not the database or the row
locks, set the pace); the load average; then the checks: every ticket
completed, exactly one approval per approver and ticket, exactly one action
run per ticket, no transition lost or doubled.
"""

import os
import random
import threading
import time

import sqlalchemy as sa

from saltops.org import people
from saltops.store.engine import Store
from saltops.tickets import templates
from saltops.tickets.schema import approvals, tickets, transitions
from saltops.tickets.workflow import Workflow
from tests.support import mysql as mysql_support
from tests.support import tickets_kit

N_TICKETS = int(os.environ.get("BENCH_TICKETS", "100"))
N_APPROVERS = int(os.environ.get("BENCH_APPROVERS", "20"))
DRIVER = os.environ.get("BENCH_DRIVER", "pymysql")
TARGET = 500


def threads(count, work):
    barrier = threading.Barrier(count + 1)
    errors = []

    def run(index):
        barrier.wait()
        try:
            work(index)
        except Exception as err:  # noqa: BLE001  (reported below, fails the benchmark)
            errors.append(err)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in pool:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in pool:
        thread.join()
    assert not errors, errors[:3]
    return time.perf_counter() - start


def baseline(store, ids):
    """Bare transactions: lock one ticket row, insert one transition row; the same threads and tickets."""

    def work(index):
        order = list(ids)
        random.Random(index).shuffle(order)
        for ticket_id in order:
            with store.begin() as conn:
                conn.execute(sa.select(tickets.c.id).where(tickets.c.id == ticket_id).with_for_update()).first()
                conn.execute(transitions.insert().values(ticket_id=ticket_id, entity="bench", entity_id=0, op="bench",
                                                         from_state=None, to_state="bench", actor="bench", ts=0))

    elapsed = threads(N_APPROVERS, work)
    with store.begin() as conn:
        conn.execute(transitions.delete().where(transitions.c.entity == "bench"))
    return N_APPROVERS * len(ids) / elapsed


def test_transitions_per_second_with_concurrent_approvers():
    problem = mysql_support.server_problem()
    assert problem is None, problem
    database = mysql_support.create_database("saltops_bench_tickets")
    # One pooled connection per approver thread (a master's runner processes each have their own pool).
    store = Store(database.url.replace("mysql+pymysql://", f"mysql+{DRIVER}://"),
                  {"pool_size": N_APPROVERS + 2, "max_overflow": 0})
    try:
        store.migrate()
        people.load(store, "bench", tickets_kit.crowd_org(N_APPROVERS), time.time())
        templates.save(store, "bench", tickets_kit.crowd_template("all"), time.time())
        executor = tickets_kit.CountingExecutor()
        creator = Workflow(store)
        ids = [creator.create("alice", "crowd-all", {"host": f"h{n}"})["id"] for n in range(N_TICKETS)]
        with store.connect() as conn:
            before = conn.execute(sa.select(sa.func.count()).select_from(transitions)).scalar()
        base = baseline(store, ids)

        def approve_all(index):
            flow = Workflow(store, executor=executor)
            order = list(ids)
            random.Random(index).shuffle(order)
            for ticket_id in order:
                flow.approve(f"c{index:02d}", ticket_id)

        cpu_before = time.process_time()
        elapsed = threads(N_APPROVERS, approve_all)
        cpu = time.process_time() - cpu_before
        with store.connect() as conn:
            written = conn.execute(sa.select(sa.func.count()).select_from(transitions)).scalar() - before
            states = dict(conn.execute(sa.select(tickets.c.state, sa.func.count()).group_by(tickets.c.state)).all())
            per_pair = conn.execute(sa.select(transitions.c.entity_id, sa.func.count()).where(
                transitions.c.op == "approve").group_by(transitions.c.entity_id)).all()
            pending = conn.execute(sa.select(sa.func.count()).select_from(approvals).where(
                approvals.c.state == "pending")).scalar()
        approvals_done = N_APPROVERS * N_TICKETS
        rate = written / elapsed
        load = os.getloadavg()
        print(f"\n{N_APPROVERS} approvers x {N_TICKETS} tickets on MariaDB ({DRIVER}): {approvals_done} "
              f"approvals in {elapsed:.2f} s (load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})")
        print(f"  approvals/s:   {approvals_done / elapsed:8.1f}")
        print(f"  transitions/s: {rate:8.1f}  ({written} transitions; target >= {TARGET})")
        print(f"  baseline (bare lock + insert transactions)/s: {base:8.1f}  "
              f"ratio approvals/baseline: {approvals_done / elapsed / base:.2f}")
        print(f"  this process: {cpu * 1000 / approvals_done:.2f} ms CPU per approval, "
              f"{cpu / elapsed:.2f} cores busy")
        # One transition per approval, plus per ticket: the action queued, run, the ticket completed.
        expected = approvals_done + 3 * N_TICKETS
        print(f"  checks: states={states} pending sub-tickets={pending} action runs={sum(executor.runs.values())} "
              f"transitions expected={expected} written={written}")
        assert states == {"completed": N_TICKETS}
        assert pending == 0 and len(per_pair) == approvals_done and all(count == 1 for _, count in per_pair)
        assert sorted(executor.runs.values()) == [1] * N_TICKETS
        assert written == expected
    finally:
        store.dispose()
        database.drop()
