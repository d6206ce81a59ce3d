"""The operations behind the runner: argument parsing, targets, history, refresh targets."""

import datetime

import pytest

from saltops.cmdb import api
from saltops.cmdb import version as cmdb_version
from saltops.errors import NotFound, ValidationError
from tests.support.cmdb_kit import CONF, counts, host


def test_parse_filters():
    assert api.parse_filters({"role": "web, lb", "env": "", "idc": None, "status": ["online"]}) == {
        "role": ["web", "lb"],
        "status": ["online"],
    }
    with pytest.raises(ValidationError, match="unknown filter.*colour"):
        api.parse_filters({"colour": "red"})


def test_parse_since():
    now = datetime.datetime(2024, 5, 10, 12, 0, 0)
    assert api.parse_since("2h", now=now) == datetime.datetime(2024, 5, 10, 10, 0, 0)
    assert api.parse_since("7d", now=now) == datetime.datetime(2024, 5, 3, 12, 0, 0)
    assert api.parse_since("2024-05-01") == datetime.datetime(2024, 5, 1)
    assert api.parse_since("2024-05-01T10:00:00+02:00") == datetime.datetime(2024, 5, 1, 8, 0)
    assert api.parse_since("2024-05-01T10:00:00Z") == datetime.datetime(2024, 5, 1, 10, 0)
    assert api.parse_since(datetime.date(2024, 5, 1)) == datetime.datetime(2024, 5, 1)
    assert api.parse_since(None) is None
    with pytest.raises(ValidationError, match="neither an ISO 8601 time"):
        api.parse_since("yesterday'; DROP TABLE audit_log; --")


def seed(store):
    api.add(store, CONF, "alice", host("web01.x.com"))
    api.add(store, CONF, "alice", host("web02.x.com", status="maintenance"))
    api.add(store, CONF, "alice", host("lb01.x.com", roles=["lb"]))
    api.add(store, CONF, "alice", host("old.x.com", status="decommissioned"))


def test_targets_leave_out_decommissioned_unless_asked(store):
    seed(store)
    assert api.targets(store, {}) == ["lb01.x.com", "web01.x.com", "web02.x.com"]
    assert api.targets(store, {"role": "web", "status": "online"}) == ["web01.x.com"]
    assert api.targets(store, {"status": "decommissioned"}) == ["old.x.com"]


def test_update_and_remove_arguments(store):
    seed(store)
    before = counts(store)
    with pytest.raises(ValidationError, match="no fields to change"):
        api.update(store, CONF, "bob", "web01.x.com", {})
    with pytest.raises(ValidationError, match="unknown field.*colour"):
        api.update(store, CONF, "bob", "web01.x.com", {"colour": "red"})
    with pytest.raises(ValidationError, match="not a valid RFC 1123"):
        api.update(store, CONF, "bob", "web01.x.com'--", {"status": "offline"})
    with pytest.raises(ValidationError, match="host 'web01.x.com'"):
        api.update(store, CONF, "bob", "web01.x.com", {"status": "gone"})
    with pytest.raises(ValidationError, match="at least one host"):
        api.remove(store, CONF, "bob", "")
    with pytest.raises(NotFound):
        api.remove(store, CONF, "bob", "web01.x.com,nope.x.com")
    assert counts(store) == before
    assert api.remove(store, CONF, "bob", "web01.x.com,web02.x.com")["removed"] == [
        "web01.x.com",
        "web02.x.com",
    ]


def test_history_filters(store):
    seed(store)
    api.update(store, CONF, "bob", "web01.x.com", {"owner": "张三"})
    rows = api.history(store, hostname="web01.x.com")
    assert [(r["actor"], r["action"]) for r in rows] == [("bob", "update"), ("alice", "add")]
    assert rows[0]["after"]["owner"] == "张三"
    assert [r["object_id"] for r in api.history(store, actor="bob")] == ["web01.x.com"]
    assert len(api.history(store, limit=2)) == 2
    assert api.history(store, since="2999-01-01") == []
    assert len(api.history(store, since="1h")) == 5
    with pytest.raises(ValidationError, match="limit"):
        api.history(store, limit="lots")


def test_refresh_targets_come_from_the_audit_log(store):
    seed(store)
    change = api.update(store, CONF, "bob", "web01.x.com", {"status": "offline"})
    found = api.refresh_targets(store, CONF, str(change["version"]))
    assert found == {
        "version": change["version"],
        "hosts": ["web01.x.com"],
        "balancers": ["lb01.x.com"],
        "all": False,
    }
    purge = api.remove(store, CONF, "bob", "web02.x.com", purge=True)
    assert api.refresh_targets(store, CONF, purge["version"])["hosts"] == ["web02.x.com"]
    with pytest.raises(NotFound, match="does not exist yet"):
        api.refresh_targets(store, CONF, purge["version"] + 1)
    for bad in ("0", "-3", "web01.x.com", "1; DROP TABLE x", True, None, "1.5"):
        with pytest.raises(ValidationError):
            api.refresh_targets(store, CONF, bad)


def test_refresh_of_a_large_change_targets_everyone(store):
    api.import_hosts(
        store,
        CONF,
        "alice",
        text="hostname,ip,roles,platform,machine_type,idc,env,owner\n"
        + "".join(
            f"h{i}.x.com,10.1.{i // 256}.{i % 256},web,Debian-12,vm,lab,dev,ops\n" for i in range(1100)
        ),
        fmt="csv",
    )
    with store.connect() as conn:
        version = cmdb_version.current(conn)
    found = api.refresh_targets(store, CONF, version)
    assert found["all"] is True and len(found["hosts"]) == 1100


def test_import_rejects_bad_mode(store):
    with pytest.raises(ValidationError, match="mode 'replace'"):
        api.import_hosts(store, CONF, "alice", text="hostname\n", fmt="csv", mode="replace")


def test_import_roots_restrict_paths(store, tmp_path):
    conf = {**CONF, "cmdb": {**CONF["cmdb"], "import_roots": [str(tmp_path / "ok")]}}
    (tmp_path / "ok").mkdir()
    path = tmp_path / "hosts.csv"
    path.write_text("hostname,ip\n")
    with pytest.raises(ValidationError, match="outside the directories"):
        api.import_hosts(store, conf, "alice", path=str(path))
