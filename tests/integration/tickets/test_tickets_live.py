"""Tickets on real daemons: a master on a MariaDB database with salt-api and three eauth users.

``salt-run ticket.*`` end to end (the acting user set the way a sudo user is),
and the same workflow through salt-api as alice (applicant), dan (approver)
and olga (ops), each with an ACL on the ticket runner.  The action is a real
``cmdb.update`` runner call, run once after the last approval, as the
applicant.
"""

import pytest
import sqlalchemy as sa

from saltops import config
from saltops.cmdb import api as cmdb_api
from saltops.cmdb import repo
from saltops.lab import demo
from saltops.lab import users as labusers
from saltops.store import get_store
from saltops.store.schema import audit_log
from tests.support import tickets_kit
from tests.support.api import SaltApiClient

pytestmark = [pytest.mark.integration, pytest.mark.mysql]

HOSTS = [f"tickets-web0{n}.lab.saltops" for n in (1, 2, 3)]
TEMPLATE = """
name: maint
description: Put a host in maintenance
fields:
  - {name: host, type: host, required: true}
  - {name: status, type: choice, choices: [maintenance, offline], default: maintenance}
steps:
  - {name: lead, manager: true}
action:
  fun: cmdb.update
  args: ["{{ form.host }}"]
  kwargs: {status: "{{ form.status }}"}
"""
OPS_STEP = TEMPLATE.replace("name: maint\n", "name: maint-ops\n").replace(
    "  - {name: lead, manager: true}", "  - {name: lead, manager: true}\n  - {name: ops, user: olga}")
ACLS = {
    "alice": [{"@runner": labusers.exactly("ticket.create", "ticket.show", "ticket.list", "ticket.cancel",
                                           "ticket.resubmit", "ticket.rate", "ticket.comment")}],
    "dan": [{"@runner": labusers.exactly("ticket.show", "ticket.list", "ticket.approve", "ticket.reject",
                                         "ticket.return", "ticket.comment", "ticket.delegate")}],
    "olga": [{"@runner": [r"ticket\..*", r"org\..*"]}],
}


@pytest.fixture(scope="module")
def env(saltops_master_factory, make_mysql_database, tmp_path_factory):
    db_url = make_mysql_database("saltops_tickets").url
    store = get_store(db_url)
    for hostname in HOSTS:
        cmdb_api.add(store, config.load({}), "tester", {**demo.HOSTS[0], "hostname": hostname})
    files = tmp_path_factory.mktemp("tickets")
    passwords = labusers.generate_passwords(ACLS)
    users_file = files / "users"
    labusers.write_users_file(users_file, passwords)
    (files / "org.yml").write_text(tickets_kit.ORG, encoding="utf-8")
    (files / "maint.yml").write_text(TEMPLATE, encoding="utf-8")
    (files / "maint-ops.yml").write_text(OPS_STEP, encoding="utf-8")
    master = saltops_master_factory("tickets-m", db_url=db_url,
                                    extra={"external_auth": labusers.external_auth(users_file, ACLS)})
    with master.started(start_timeout=120):
        api = master.salt_api_daemon()
        with api.started(start_timeout=120):
            yield {"master": master, "store": store, "files": files, "run": master.salt_run_cli(timeout=180),
                   "api": SaltApiClient(f"http://127.0.0.1:{master.config['rest_cherrypy']['port']}", passwords)}


def salt_run(env, user, fun, *args, ok=True, **kwargs):
    return tickets_kit.salt_run_as(env["run"], user, fun, *args, ok=ok, **kwargs)


def host_status(env, hostname):
    with env["store"].connect() as conn:
        return repo.get_host(conn, hostname)["status"]


@pytest.fixture(scope="module")
def loaded(env):
    salt_run(env, "olga", "ticket.template_save", "path=" + str(env["files"] / "maint.yml"), ok=False)
    # The template names the applicant's manager: without an org there is none, but the template is valid.
    salt_run(env, "olga", "org.load", "path=" + str(env["files"] / "org.yml"))
    for name in ("maint.yml", "maint-ops.yml"):
        salt_run(env, "olga", "ticket.template_save", "path=" + str(env["files"] / name))
    return env


def test_a_template_naming_unknown_things_is_refused_with_every_problem(loaded):
    bad = loaded["files"] / "bad.yml"
    bad.write_text(TEMPLATE.replace("name: maint\n", "name: bad\n").replace("manager: true", "user: nobody")
                   .replace("{{ form.host }}", "{{ form.hostname }}"), encoding="utf-8")
    ret = salt_run(loaded, "olga", "ticket.template_save", "path=" + str(bad), ok=False)
    assert ret.returncode == 1
    assert "unknown user 'nobody'" in ret.stdout or "unknown field 'hostname'" in ret.stdout
    assert "nothing was saved" in ret.stdout


def test_salt_run_end_to_end_the_action_runs_once_after_the_last_approval_as_the_applicant(loaded):
    created = salt_run(loaded, "alice", "ticket.create", "maint", host=HOSTS[0]).data
    assert created["state"] == "in_approval" and created["waiting_for"] == ["dan"]
    assert host_status(loaded, HOSTS[0]) == "online"
    refused = salt_run(loaded, "alice", "ticket.approve", str(created["id"]), ok=False)
    assert refused.returncode == 1 and "not an approver" in refused.stdout
    decided = salt_run(loaded, "dan", "ticket.approve", str(created["id"]), comment="go").data
    assert (decided["state"], decided["action_state"]) == ("completed", "done"), decided
    assert host_status(loaded, HOSTS[0]) == "maintenance"
    done = salt_run(loaded, "alice", "ticket.show", str(created["id"])).data
    assert len(done["actions"]) == 1 and done["actions"][0]["on_behalf"] == {"applicant": "alice",
                                                                             "approvers": ["dan"]}
    with loaded["store"].connect() as conn:
        rows = conn.execute(sa.select(audit_log.c.actor).where(
            (audit_log.c.object_type == "host") & (audit_log.c.object_id == HOSTS[0])
            & (audit_log.c.action.like("%update%")))).all()
    assert [r.actor for r in rows] == ["alice"]
    again = salt_run(loaded, "dan", "ticket.approve", str(created["id"]), ok=False)
    assert again.returncode == 1 and "is completed" in again.stdout
    rated = salt_run(loaded, "alice", "ticket.rate", str(created["id"]), "5").data
    assert rated["rating"] == 5


def test_a_failing_action_is_an_execution_error_until_ops_retries(loaded):
    created = salt_run(loaded, "alice", "ticket.create", "maint", host=HOSTS[1], status="offline").data
    # The host leaves the CMDB between approval request and approval: cmdb.update refuses.
    salt_run(loaded, "olga", "cmdb.remove", HOSTS[1], purge=True)
    failed = salt_run(loaded, "dan", "ticket.approve", str(created["id"])).data
    assert (failed["state"], failed["action_state"]) == ("in_approval", "execution_error"), failed
    shown = salt_run(loaded, "alice", "ticket.show", str(created["id"])).data
    assert "is not in the CMDB" in shown["actions"][0]["output"], shown["actions"]
    assert salt_run(loaded, "alice", "ticket.retry", str(created["id"]), ok=False).returncode == 1
    cmdb_api.add(loaded["store"], config.load({}), "tester", {**demo.HOSTS[0], "hostname": HOSTS[1]})
    retried = salt_run(loaded, "olga", "ticket.retry", str(created["id"])).data
    assert (retried["state"], [a["state"] for a in retried["actions"]]) == ("completed", ["execution_error", "done"])
    assert host_status(loaded, HOSTS[1]) == "offline"


def test_three_users_through_salt_api_with_acls(loaded):
    api = loaded["api"]
    created = api.run_data("alice", "ticket.create", "maint-ops", host=HOSTS[2])
    tid = created["id"]
    # ACLs: the applicant cannot approve or report, the approver cannot cancel or retry.
    assert api.run("alice", "ticket.approve", tid).status_code == 401
    assert api.run("alice", "ticket.report").status_code == 401
    assert api.run("dan", "ticket.cancel", tid).status_code == 401
    assert api.run("dan", "ticket.retry", tid).status_code == 401
    assert [t["id"] for t in api.run_data("dan", "ticket.list", scope="to_approve")] == [tid]
    api.run_data("dan", "ticket.approve", tid)
    # The core: dan may call approve, but the current step is olga's; refused, nothing changes.
    before = api.run_data("alice", "ticket.show", tid)
    refused = api.run_data("dan", "ticket.approve", tid)
    assert refused["result"] is False and "not an approver of the current step (ops)" in refused["error"]
    assert api.run_data("alice", "ticket.show", tid)["transitions"] == before["transitions"]
    assert host_status(loaded, HOSTS[2]) == "online"
    decided = api.run_data("olga", "ticket.approve", tid)
    assert (decided["state"], decided["action_state"]) == ("completed", "done"), decided
    assert host_status(loaded, HOSTS[2]) == "maintenance"
    done = api.run_data("alice", "ticket.show", tid)
    assert done["actions"][0]["on_behalf"] == {"applicant": "alice", "approvers": ["dan", "olga"]}
    report = api.run_data("olga", "ticket.report")
    assert report["templates"]["maint-ops"]["states"] == {"completed": 1}
    assert api.run_data("dan", "ticket.show", tid)["id"] == tid
    denied = api.run_data("dan", "ticket.list", scope="all")
    assert denied["result"] is False and "role 'ops'" in denied["error"]
