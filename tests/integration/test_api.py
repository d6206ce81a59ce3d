"""salt-api (rest_cherrypy) with eauth: who may call which CMDB runner, and who is audited.

The master, its CMDB (seeded with the lab's demo hosts) and salt-api come from
tests/conftest.py; the users and their ACLs are the lab's (saltops.lab.users).
"""

import uuid

import pytest
import requests
import sqlalchemy as sa

from saltops.cmdb import repo
from saltops.lab import demo
from saltops.store.schema import audit_log

pytestmark = pytest.mark.integration


def cmdb_state(store):
    """What a refused call must leave untouched: the change counter, the audit log, web01."""
    with store.connect() as conn:
        return (
            repo.current_version(conn),
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
