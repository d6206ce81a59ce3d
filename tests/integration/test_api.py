"""salt-api (rest_cherrypy) with eauth: who may call which CMDB runner, and who is audited.

The master, its CMDB (seeded with the lab's demo hosts) and salt-api come from
tests/conftest.py; the users and their ACLs are the lab's (saltops.lab.users).
"""

import time
import uuid

import pytest
import requests
import sqlalchemy as sa

from saltops.cmdb import repo
from saltops.cmdb import version as cmdb_version
from saltops.lab import demo
from saltops.store.schema import audit_log

pytestmark = pytest.mark.integration


def cmdb_state(store):
    """What a refused call must leave untouched: the change counter, the audit log, web01."""
    with store.connect() as conn:
        return (
            cmdb_version.current(conn),
            conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar(),
            repo.get_host(conn, demo.WEB),
        )


def test_viewer_lists_hosts(api):
    hosts = api.run_data("viewer", "cmdb.list", role="web")
    # Other tests share this CMDB and may add hosts of their own.
    assert {demo.WEB, f"web02.{demo.DOMAIN}"} <= {h["hostname"] for h in hosts}
    assert all("web" in h["roles"] for h in hosts)
    assert demo.DB not in {h["hostname"] for h in hosts}


def test_viewer_shows_one_host(api):
    host = api.run_data("viewer", "cmdb.show", demo.LB)
    assert host["hostname"] == demo.LB
    assert host["lines"]["telecom"] == "203.0.113.10"


def test_viewer_may_not_remove_and_nothing_changes(api, cmdb_store):
    before = cmdb_state(cmdb_store)
    resp = api.run("viewer", "cmdb.remove", demo.WEB)
    assert resp.status_code == 401
    resp = api.run("viewer", "cmdb.remove", demo.WEB, purge=True)
    assert resp.status_code == 401
    after = cmdb_state(cmdb_store)
    assert after == before
    assert after[2]["status"] == "online"


def test_viewer_may_not_add(api, cmdb_store):
    before = cmdb_state(cmdb_store)
    resp = api.run(
        "viewer",
        "cmdb.add",
        f"sneaky.{demo.DOMAIN}",
        ip="10.20.0.99",
        roles="base",
        platform="Debian-12",
        machine_type="vm",
        idc="lab",
        env="dev",
        owner="nobody",
    )
    assert resp.status_code == 401
    assert cmdb_state(cmdb_store) == before
    with cmdb_store.connect() as conn:
        assert repo.get_hosts(conn, [f"sneaky.{demo.DOMAIN}"]) == {}


def test_deployer_may_not_read_the_cmdb(api):
    assert api.run("deployer", "cmdb.list").status_code == 401
    assert api.run("deployer", "cmdb.show", demo.WEB).status_code == 401


def test_viewer_may_not_run_commands_on_minions(api):
    resp = api.local("viewer", "*", "cmd.run", "id")
    assert resp.status_code == 401


def test_wrong_password_and_unknown_user_are_refused(api):
    assert api.login("viewer", "not-the-password").status_code == 401
    assert api.login("nobody", "whatever").status_code == 401
    assert api.login("viewer").status_code == 200


def test_no_token_is_refused(api):
    resp = requests.post(
        api.url + "/",
        json=[{"client": "runner", "fun": "cmdb.list"}],
        headers={"Accept": "application/json"},
        timeout=30,
    )
    assert resp.status_code == 401


def test_audit_log_names_the_eauth_user(api, cmdb_store):
    hostname = f"api-{uuid.uuid4().hex[:8]}.{demo.DOMAIN}"
    added = api.run_data(
        "ops",
        "cmdb.add",
        hostname,
        ip="10.20.0.77",
        roles="base,web",
        platform="Debian-12",
        machine_type="vm",
        idc="lab",
        env="dev",
        owner="web-team",
    )
    try:
        assert added["added"] == [hostname]
        history = api.run_data("viewer", "cmdb.history", hostname)
        assert [(row["actor"], row["action"]) for row in history] == [("ops", "add")]
        with cmdb_store.connect() as conn:
            actors = (
                conn.execute(sa.select(audit_log.c.actor).where(audit_log.c.object_id == hostname))
                .scalars()
                .all()
            )
        assert actors == ["ops"]
    finally:
        removed = api.run_data("ops", "cmdb.remove", hostname, purge=True)
    assert removed["purged"] == [hostname]
    history = api.run_data("viewer", "cmdb.history", hostname)
    assert [row["actor"] for row in history] == ["ops", "ops"]


# --- ACL entries name whole functions (Salt matches them with re.match) -------------


def test_a_name_that_starts_with_an_allowed_one_is_refused(api):
    # jobs.list_jobs_filter is a real runner whose name starts with the allowed jobs.list_jobs
    # (and jobs.list_job): an unanchored entry would grant it.
    assert api.run("viewer", "jobs.list_jobs").status_code == 200
    for user in ("viewer", "deployer"):
        assert api.run(user, "jobs.list_jobs_filter").status_code == 401, user
    # ops' ACL lets the same call through: the 401 above is the ACL's doing
    assert api.run("ops", "jobs.list_jobs_filter").status_code == 200


def _job_info(api, user, jid):
    """GET /jobs/<jid> as ``user`` until the job's return is in the job cache; (status, body).

    While Salt's local job cache is still writing a job, jobs.list_job fails on a
    missing file and salt-api answers 500: a web client polls past that, and so
    does this helper; a refusal (401) or a lasting error ends the wait.
    """
    deadline = time.monotonic() + 60
    while True:
        resp = api.get(user, f"/jobs/{jid}")
        ready = resp.status_code == 200 and any(resp.json()["return"][0].values())
        if ready or resp.status_code not in (200, 500) or time.monotonic() > deadline:
            return resp.status_code, resp.json() if resp.status_code == 200 else resp.text
        time.sleep(0.5)


@pytest.mark.parametrize("user", ["viewer", "deployer"])
def test_viewer_and_deployer_read_jobs_as_a_web_client_does(api, user):
    # ops starts a runner in the background; a web client follows it by its jid
    started = api.lowstate("ops", {"client": "runner_async", "fun": "cmdb.show", "arg": [demo.LB]})
    assert started.status_code == 200, started.text
    jid = started.json()["return"][0]["jid"]
    status, body = _job_info(api, user, jid)
    assert status == 200, body
    [returns] = body["return"]
    # a runner job's return in the job cache is its whole return event
    [shown] = returns.values()
    assert shown["return"]["hostname"] == demo.LB and shown["user"] == "ops"
    assert body["info"][0]["Function"] == "runner.cmdb.show"
    # the job list (GET /jobs) and the lookup a client uses for asynchronous results
    listing = api.get(user, "/jobs")
    assert listing.status_code == 200 and jid in listing.json()["return"][0]
    [looked_up] = api.run_data(user, "jobs.lookup_jid", jid).values()
    assert looked_up["return"]["hostname"] == demo.LB, looked_up
    assert isinstance(api.run_data(user, "jobs.active"), dict)
    # reading jobs gives no other runner and no minion function
    assert api.run(user, "jobs.list_jobs_filter").status_code == 401
    assert api.local(user, "*", "test.ping").status_code == 401
