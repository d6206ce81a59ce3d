"""Benchmark: ``ticket.approve`` through salt-api against a bare runner call through salt-api, same run.

Run with:

    .venv/bin/python -m pytest tests/bench/bench_ticket_api.py -s -p no:cacheprovider

Environment: ``BENCH_CALLS`` (approvals, and as many bare calls; default 200),
``BENCH_WARMUP`` (calls of each kind made first and not counted; default 10).

A master on a fresh MariaDB database with salt-api (rest_cherrypy, eauth
``file``).  The approver ``dan`` may call ``ticket.approve`` and ``test.arg``
(Salt's own runner: it returns its arguments) and nothing else.  Before the
clock starts, ``alice`` applies for ``BENCH_CALLS`` tickets (through the core,
:meth:`Workflow.create`) from a template with two steps, ``dan`` then
``olga``; approver notices go to a ``file`` channel.  So each timed approval
is what a lead's approval does in production short of the action: the row
lock, the decision, the move to the next step, the transitions and events,
the events fired on the master bus, and ``olga``'s notice queued.

The two calls alternate (``test.arg`` first on even rounds, the approval
first on odd ones), each one HTTP request with dan's token, timed from the
request to the answer.  Printed: p50, p95, p99, max and mean of both, and
the ratios (target: approval p99 at most 1.3x the bare call's).  Checked:
every approval answered with the ticket now waiting for olga, every ticket
has exactly one approval by dan and one notice for olga.
"""

import os
import statistics
import time

import pytest
import sqlalchemy as sa

from saltops.lab import users as labusers
from saltops.org import people
from saltops.store import get_store
from saltops.tickets import templates
from saltops.tickets.notice_schema import notices
from saltops.tickets.schema import transitions
from saltops.tickets.workflow import Workflow
from tests.support.api import SaltApiClient

pytestmark = [pytest.mark.integration, pytest.mark.mysql]

N = int(os.environ.get("BENCH_CALLS", "200"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "10"))
TARGET = 1.3

ORG = """
users:
  alice: {manager: dan}
  dan: {}
  olga: {email: olga@example.com}
"""
TEMPLATE = """
name: two-step
fields:
  - {name: host, type: str, required: true}
steps:
  - {name: lead, user: dan}
  - {name: ops, user: olga}
action:
  fun: cmdb.update
  args: ["{{ form.host }}"]
  kwargs: {status: maintenance}
"""
ACLS = {
    "dan": [{"@runner": labusers.exactly("ticket.approve", "test.arg")}],
}


@pytest.fixture(scope="module")
def env(saltops_master_factory, make_mysql_database, tmp_path_factory):
    db_url = make_mysql_database("saltops_bench_ticket_api").url
    store = get_store(db_url)
    now = time.time()
    people.load(store, "bench", ORG, now)
    templates.save(store, "bench", TEMPLATE, now)
    creator = Workflow(store)
    ids = [creator.create("alice", "two-step", {"host": f"h{n:04d}"})["id"] for n in range(N + WARMUP)]
    files = tmp_path_factory.mktemp("ticket-api")
    passwords = labusers.generate_passwords(ACLS)
    labusers.write_users_file(files / "users", passwords)
    extra = {
        "external_auth": labusers.external_auth(files / "users", ACLS),
        "saltops": {"notify": {"channels": {"log": {"type": "file", "path": str(files / "notices.log")}}},
                    "tickets": {"notify": {"channels": ["log"]}}},
    }
    master = saltops_master_factory("tickapi-m", db_url=db_url, extra=extra)
    with master.started(start_timeout=120):
        api = master.salt_api_daemon()
        with api.started(start_timeout=120):
            client = SaltApiClient(f"http://127.0.0.1:{master.config['rest_cherrypy']['port']}", passwords)
            yield {"store": store, "ids": ids, "api": client}


def timed(call):
    start = time.perf_counter()
    out = call()
    return time.perf_counter() - start, out


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def line(name, values):
    ms = [v * 1000 for v in values]
    return (f"  {name:<16} p50 {percentile(ms, 0.5):7.1f}  p95 {percentile(ms, 0.95):7.1f}  "
            f"p99 {percentile(ms, 0.99):7.1f}  max {max(ms):7.1f}  mean {statistics.mean(ms):7.1f} ms")


def test_approval_through_salt_api_against_a_bare_runner_call(env):
    api, ids = env["api"], env["ids"]
    answers = {}

    def approve(ticket_id):
        return lambda: api.run_data("dan", "ticket.approve", ticket_id)

    def bare(n):
        return lambda: api.run_data("dan", "test.arg", n)

    for n in range(WARMUP):
        answers[ids[n]] = approve(ids[n])()
        bare(n)()
    approvals, bares = [], []
    for n in range(N):
        ticket_id = ids[WARMUP + n]
        pair = [("bare", bare(n)), ("approve", approve(ticket_id))]
        for kind, call in (pair if n % 2 == 0 else reversed(pair)):
            elapsed, out = timed(call)
            if kind == "approve":
                approvals.append(elapsed)
                answers[ticket_id] = out
            else:
                bares.append(elapsed)
                assert out["args"][0] == n, out
    load = os.getloadavg()
    print(f"\n{N} approvals and {N} bare runner calls through salt-api, interleaved "
          f"(load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})")
    print(line("test.arg", bares))
    print(line("ticket.approve", approvals))
    ratios = {name: percentile(approvals, q) / percentile(bares, q) for name, q in
              (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
    print("  ratio approve/bare: " + "  ".join(f"{k} {v:.2f}" for k, v in ratios.items())
          + f"  (target: p99 <= {TARGET})")

    wrong = {t: a for t, a in answers.items() if not (isinstance(a, dict) and a.get("state") == "in_approval"
                                                      and a.get("waiting_for") == ["olga"])}
    assert not wrong, list(wrong.items())[:3]
    with env["store"].connect() as conn:
        decided = dict(conn.execute(sa.select(transitions.c.ticket_id, sa.func.count()).where(
            (transitions.c.op == "approve") & (transitions.c.actor == "dan"))
            .group_by(transitions.c.ticket_id)).all())
        told = dict(conn.execute(sa.select(notices.c.ticket_id, sa.func.count()).where(
            (notices.c.user == "olga") & (notices.c.kind == "next")).group_by(notices.c.ticket_id)).all())
    assert decided == {t: 1 for t in ids}
    assert told == {t: 1 for t in ids}
