"""The tickets' figures for ``/metrics``, read at scrape time (found by :func:`saltops.metrics.use_store`).

Per template: tickets by state, the time to approve (mean, median, max
seconds), satisfaction (mean rating and the number of ratings), and the
sub-tickets waiting for approvers now.
"""

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily

from saltops.tickets.schema import approvals, tickets
from saltops.tickets.workflow import summarise


def collect(store):
    """Metric families for :func:`saltops.metrics.use_store`."""
    with store.connect() as conn:
        rows = conn.execute(sa.select(tickets.c.template, tickets.c.state, tickets.c.created_at,
                                      tickets.c.approved_at, tickets.c.rating)).all()
        waiting = conn.execute(
            sa.select(tickets.c.template, sa.func.count()).select_from(approvals.join(
                tickets, (tickets.c.id == approvals.c.ticket_id) & (tickets.c.round == approvals.c.round)
                & (tickets.c.step == approvals.c.step)))
            .where((approvals.c.state == "pending") & (tickets.c.state == "in_approval"))
            .group_by(tickets.c.template)).all()
    summary = summarise(rows)
    volume = GaugeMetricFamily("saltops_tickets", "Tickets by template and state", labels=["template", "state"])
    wait = GaugeMetricFamily("saltops_ticket_time_to_approve_seconds",
                             "Seconds from a ticket's creation to its last approval", labels=["template", "stat"])
    score = GaugeMetricFamily("saltops_ticket_satisfaction", "Mean satisfaction rating (1-5)", labels=["template"])
    rated = GaugeMetricFamily("saltops_ticket_ratings", "Tickets rated by their applicant", labels=["template"])
    for template, item in sorted(summary.items()):
        for state, count in sorted(item["states"].items()):
            volume.add_metric([template, state], count)
        for stat in ("mean", "median", "max"):
            if item["time_to_approve"]:
                wait.add_metric([template, stat], item["time_to_approve"][stat])
        if item["satisfaction"]:
            score.add_metric([template], item["satisfaction"]["mean"])
            rated.add_metric([template], item["satisfaction"]["count"])
    pending = GaugeMetricFamily("saltops_ticket_approvals_pending",
                                "Approvers' sub-tickets of current steps waiting for a decision", labels=["template"])
    for template, count in waiting:
        pending.add_metric([template], count)
    yield from (volume, wait, score, rated, pending)
