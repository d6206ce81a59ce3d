"""The org file is checked whole, loaded all or nothing, audited; eauth groups become roles."""

import time

import pytest
import sqlalchemy as sa

from saltops.errors import NotFound, ValidationError
from saltops.org import people
from saltops.store import audit
from saltops.store.schema import audit_log


def test_the_loaded_org_answers_the_workflows_questions(store):
    with store.connect() as conn:
        assert people.members(conn, "ops") == ["olga", "oscar"]
        assert people.department_head(conn, "dev") == "dan"
        assert people.manager_of(conn, "alice") == "dan"
        assert people.manager_of(conn, "carol") is None
        assert people.has_role(conn, "olga", "ops") and not people.has_role(conn, "alice", "ops")
        with pytest.raises(NotFound):
            people.department_head(conn, "hr")


@pytest.mark.parametrize("text, expected", [
    ("users: {eve: {manager: mallory}}", "users.eve.manager: unknown user 'mallory'"),
    ("users: {eve: {department: hr}}", "users.eve.department: unknown department 'hr'"),
    ("departments: {hr: {head: zed}}", "departments.hr.head: unknown user 'zed'"),
    ("users: {eve: {colour: red}}", "users.eve.colour: unknown key"),
    ("users: {'eve smith': {}}", "is not a valid name"),
    ("users: {eve: {manager: eve}}", "own manager"),
    ("users: {eve: {}, ann: {}}\ndelegates: [{from: eve, to: ann}]", "delegates[0].until: required"),
    ("users: {eve: {}, ann: {}}\ndelegates: [{from: eve, to: ann, until: soon}]", "is not a time"),
    ("staff: []", "staff: unknown key"),
    ("users: [eve]", "users: must be a mapping"),
    ("users: {eve: {", "not valid YAML"),
])
def test_a_bad_org_file_changes_nothing_and_names_the_key(store, text, expected):
    with store.connect() as conn:
        before = people.listing(conn)
    with pytest.raises(ValidationError) as info:
        people.load(store, "tester", text, time.time())
    assert expected in str(info.value)
    with store.connect() as conn:
        assert people.listing(conn) == before


def test_loading_replaces_the_file_defined_org_and_audits_the_change(store):
    people.load(store, "root", "departments: {ops: {head: olga}}\nusers: {olga: {department: ops, roles: [ops]}}",
                time.time())
    with store.connect() as conn:
        assert set(people.listing(conn)["users"]) == {"olga"}
        rows = audit.history(conn, object_type="org", actor="root")
    assert {r["object_id"] for r in rows} >= {"user:alice", "user:dan", "department:dev"}
    gone = next(r for r in rows if r["object_id"] == "user:alice")
    assert gone["before"]["manager"] == "dan" and gone["after"] is None


def test_eauth_users_and_groups_are_synced_as_roles(store):
    external_auth = {"pam": {"frank": [".*"], "dba%": ["@runner"], "ops%": ["@runner"]}, "file": {"alice": []}}
    groups = {"frank": ["dba", "users"], "alice": ["ops"], "olga": []}
    result = people.sync_eauth(store, "root", external_auth, lambda name: groups.get(name, []))
    assert result["users_added"] == ["frank"]
    with store.connect() as conn:
        assert people.roles_of(conn, "frank") == ["dba"]
        assert people.roles_of(conn, "alice") == ["ops"]
        # A role from the org file stays whatever the groups say.
        assert people.roles_of(conn, "olga") == ["ops"]
    # Leaving the group takes the synced role away at the next sync.
    groups["alice"] = []
    people.sync_eauth(store, "root", external_auth, lambda name: groups.get(name, []))
    with store.connect() as conn:
        assert people.roles_of(conn, "alice") == []
        assert conn.execute(sa.select(audit_log).where(audit_log.c.action == "org.sync_eauth")).first()


def test_a_delegation_is_active_between_its_times_only(store):
    now = time.time()
    people.add_delegate(store, "dan", "dan", "bob", now + 3600, now)
    with store.connect() as conn:
        assert people.principals_for(conn, "bob", now + 10) == ["dan"]
        assert people.principals_for(conn, "bob", now + 3601) == []
        assert people.delegates_of(conn, "dan", now) == ["bob"]
    with pytest.raises(ValidationError, match="future"):
        people.add_delegate(store, "dan", "dan", "bob", now - 1, now)
    with pytest.raises(NotFound):
        people.add_delegate(store, "dan", "dan", "nobody", now + 60, now)
