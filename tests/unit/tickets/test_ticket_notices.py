"""Approvers' notices, step deadlines with a controllable clock, phone links, reports and ticket metrics."""

import csv
import io

import pytest
import sqlalchemy as sa

from saltops.errors import ConfigError, ValidationError
from saltops.notify.schema import outbox
from saltops.org import people
from saltops.tickets import deadlines, links, metrics, notices, reports, settings
from saltops.tickets.notice_schema import links as link_table
from saltops.tickets.notice_schema import notices as notice_table
from saltops.tickets.workflow import Refused, Workflow
from tests.support import tickets_kit

# The kit's people, with addresses, dan reporting to olga, and carol standing in for dan.
ORG = tickets_kit.ORG.replace("dan: {department: dev}", "dan: {department: dev, manager: olga, email: dan@example.com, "
                              "phone: '13800000001'}").replace(
    "olga: {department: ops, roles: [ops]}", "olga: {department: ops, roles: [ops], email: olga@example.com}") + """
  carol2: {department: dev, email: carol2@example.com}
"""
CHANNELS = {"mail": {"type": "smtp", "host": "127.0.0.1", "from": "saltops@example.com", "to": ["ops@example.com"]},
            "robot": {"type": "wecom", "url": "http://127.0.0.1:9/wecom?key=k"}}
HOUR = 3600.0
SECRET = b"k" * 32


@pytest.fixture
def flow(store, executor, clock):
    with store.begin() as conn:
        for table in (notice_table, link_table, outbox):
            conn.execute(sa.delete(table))
    people.load(store, "tester", ORG, clock())
    return Workflow(store, executor=executor, clock=clock)


@pytest.fixture
def notifier(flow, clock):
    conf = settings.load({"tickets": {"notify": {"channels": ["mail", "robot"], "base_url": "https://so.example.com/t",
                                                 "remind_after": "4h", "escalate_after": "8h", "link_ttl": "1h"}}})
    return notices.Notifier(flow.store, conf["notify"], CHANNELS, SECRET, clock)


def queued(store):
    with store.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(outbox).order_by(outbox.c.id))]


def test_the_next_approvers_are_told_once_on_each_channel_where_they_have_an_address(flow, notifier, store):
    ticket = flow.create("bob", "maint", {"host": "web1.example.com", "env": "dev"}, title="<b>swap</b> disk")
    assert notifier.announce() == 1
    assert notifier.announce(ticket["id"]) == 0  # told already
    mail, robot = queued(store)
    assert (mail["channel"], mail["payload"]["recipients"]) == ("mail", {"to": ["dan@example.com"]})
    assert (robot["channel"], robot["payload"]["recipients"]) == ("robot", {"phones": ["13800000001"]})
    # The link goes by mail only (one person's mailbox), never to the group robot.
    assert "https://so.example.com/t/approve?t=" in mail["payload"]["alerts"][0]["annotations"]["summary"]
    assert "approve?t=" not in robot["payload"]["alerts"][0]["annotations"]["summary"]
    assert mail["payload"]["title"].startswith(f"[ticket #{ticket['id']}] <b>swap</b> disk waits")
    assert mail["payload"]["version"] == "4" and mail["payload"]["commonLabels"]["approver"] == "dan"


def test_a_person_without_an_address_is_recorded_as_told_on_no_channel(flow, notifier, store):
    ticket = flow.create("bob", "maint", {"host": "web1.example.com", "env": "prod"})
    flow.approve("dan", ticket["id"])
    notifier.announce()
    with store.connect() as conn:
        told = {r.user: r.deliveries for r in conn.execute(sa.select(notice_table).where(notice_table.c.kind == "next"))}
    assert told == {"olga": 1, "oscar": 0}
    assert notifier.announce() == 0  # oscar is not tried again every time


def test_past_its_deadline_a_step_reminds_then_escalates_to_the_managers_once(flow, notifier, store, clock):
    start = clock.now
    ticket = flow.create("bob", "maint", {"host": "web1.example.com", "env": "dev"})
    flow.delegate("dan", "carol", start + 100 * HOUR)
    clock.now = start + 3 * HOUR
    assert deadlines.check(flow, notifier, clock()) == {"told": 1, "reminded": [], "escalated": []}
    clock.now = start + 5 * HOUR
    done = deadlines.check(flow, notifier, clock())
    assert done["reminded"] == [{"ticket": ticket["id"], "user": "dan"}, {"ticket": ticket["id"], "user": "carol"}]
    assert done["escalated"] == [] and deadlines.check(flow, notifier, clock())["reminded"] == []
    with pytest.raises(Refused):
        flow.approve("olga", ticket["id"])  # not yet: the step is not escalated
    clock.now = start + 9 * HOUR
    done = deadlines.check(flow, notifier, clock())
    assert [e["added"] for e in done["escalated"]] == [["olga"]]
    assert deadlines.check(flow, notifier, clock())["escalated"] == []  # once
    shown = flow.show("bob", ticket["id"])
    assert shown["waiting_for"] == ["dan", "olga"]
    assert [t["op"] for t in shown["transitions"] if t["entity"] == "approval"][-1] == "escalate"
    kinds = {(p["payload"]["commonLabels"]["approver"], p["payload"]["commonLabels"]["notice"])
             for p in queued(store)}
    assert ("olga", "escalate") in kinds and ("dan", "remind") in kinds
    assert flow.approve("olga", ticket["id"])["state"] == "completed"


def test_a_step_begins_when_the_previous_one_was_decided(flow, notifier, store, clock):
    start = clock.now
    ticket = flow.create("bob", "maint", {"host": "web1.example.com", "env": "prod"})
    clock.now = start + 7 * HOUR
    flow.approve("dan", ticket["id"])
    clock.now = start + 9 * HOUR  # 2 h into the ops step: nothing late yet
    done = deadlines.check(flow, notifier, clock())
    assert done["reminded"] == [] and done["escalated"] == []
    assert done["told"] == 2  # olga and oscar (who has no address: recorded as told on no channel)


def test_a_link_works_once_for_its_approver_and_ticket_until_it_expires(store, flow):
    now = 1000.0
    with store.begin() as conn:
        token = links.issue(conn, SECRET, 7, 70, "dan", now, 60)
        row = links.verify(conn, SECRET, token, now + 10)
        assert (row["ticket_id"], row["approval_id"], row["user"]) == (7, 70, "dan")
        nonce, expires, sig = token.split(".")
        for forged in (f"{nonce}.{int(expires) + 999}.{sig}", f"{nonce}.{expires}.{sig[:-2]}AA", "x", "",
                       token.replace(nonce, "0" * 32)):
            with pytest.raises(links.LinkRefused) as err:
                links.verify(conn, SECRET, forged, now)
            assert err.value.reason == "invalid"
        with pytest.raises(links.LinkRefused, match="not valid"):
            links.verify(conn, b"other-secret-000", token, now)
        with pytest.raises(links.LinkRefused, match="expired"):
            links.verify(conn, SECRET, token, now + 61)
        assert links.burn(conn, nonce, "approve", now + 1) is True
        assert links.burn(conn, nonce, "reject", now + 2) is False
        with pytest.raises(links.LinkRefused, match="already used"):
            links.verify(conn, SECRET, token, now + 3)


def test_the_link_key_is_made_once_and_private(tmp_path):
    path = tmp_path / "keys" / "ticket-links.key"
    key = links.load_secret(str(path))
    assert len(key) == 32 and links.load_secret(str(path)) == key
    assert path.stat().st_mode & 0o777 == 0o600


def test_bad_settings_are_refused_with_the_key():
    for raw, text in (({"notify": {"colour": 1}}, "unknown key"), ({"notify": {"channels": "mail"}}, "list"),
                      ({"notify": {"remind_after": "5h", "escalate_after": "1h"}}, "longer"),
                      ({"notify": {"base_url": "ftp://x"}}, "http"), ({"web": {"listen_port": -1}}, "listen_port"),
                      ({"notify": {"remind_after": "soon"}}, "remind_after")):
        with pytest.raises(ConfigError, match=text):
            settings.load({"tickets": raw})
    checked = settings.load({"tickets": {"notify": {"channels": ["nope"]}}})
    assert notices.check_channels(checked["notify"], CHANNELS) == [
        "saltops:tickets:notify: channel 'nope' is not defined under saltops:notify:channels"]


def test_reports_as_table_csv_and_json_and_as_metrics(flow, store, clock):
    done = flow.create("bob", "maint", {"host": "web1.example.com", "env": "dev"})
    clock.now += 120
    flow.approve("dan", done["id"])
    flow.rate("bob", done["id"], 4)
    flow.create("alice", "maint", {"host": "web2.example.com", "env": "dev"})
    summary = flow.report("olga")
    table = reports.render(summary, "table").splitlines()
    assert table[0].split()[:3] == ["template", "count", "in_approval"]
    assert table[1].split()[:4] == ["maint", "2", "1", "0"]
    [row] = list(csv.DictReader(io.StringIO(reports.render(summary, "csv"))))
    assert (row["count"], row["completed"], row["approve_mean_s"], row["satisfaction"]) == ("2", "1", "120.0", "4.0")
    assert reports.render(summary, "json")["rows"][0]["approved"] == 1
    with pytest.raises(ValidationError, match="format"):
        reports.render(summary, "xml")
    families = {f.name: f for f in metrics.collect(store)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("saltops_tickets", (("state", "completed"), ("template", "maint")))] == 1
    assert samples[("saltops_ticket_satisfaction", (("template", "maint"),))] == 4
    assert samples[("saltops_ticket_approvals_pending", (("template", "maint"),))] == 1
    assert samples[("saltops_ticket_time_to_approve_seconds", (("stat", "max"), ("template", "maint")))] == 120


def test_only_operators_define_the_tickets_tasks_and_a_refusal_writes_nothing(store):
    from saltops import config
    from saltops.tasks import settings as task_settings
    from saltops.tasks.schema import definitions

    asked = []

    def check(kind, fun, args, kwargs, hostnames):
        asked.append(fun)
        return []

    conf = task_settings.load(config.load({}))
    with store.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(definitions)).scalar()
    with pytest.raises(Refused, match="bob does not have the role 'ops': only operators schedule"):
        deadlines.ensure_tasks(store, "bob", "ops", conf, 1_800_000_000, check)
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(definitions)).scalar() == before
    assert asked == []
    done = deadlines.ensure_tasks(store, "olga", "ops", conf, 1_800_000_000, check)
    assert (done["deadlines"]["fun"], done["report"]["fun"]) == ("ticket.check_deadlines", "ticket.report")
    assert sorted(asked) == ["ticket.check_deadlines", "ticket.report"]
