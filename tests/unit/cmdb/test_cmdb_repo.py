"""The CMDB repository on SQLite and on MariaDB: writes, filters, versions, audit, events."""

import pytest
import sqlalchemy as sa

from saltops.cmdb import repo
from saltops.errors import NotFound, ValidationError
from saltops.store.schema import event_outbox
from tests.support.cmdb_kit import INJECTIONS, LB_SERVES, NON_ASCII, RULES, counts, host, many


def write(store, records, **kw):
    kw.setdefault("rules", RULES)
    kw.setdefault("lb_serves", LB_SERVES)
    return repo.write(store, "alice", records, **kw)


def events(store):
    with store.connect() as conn:
        return [(r.tag, r.data) for r in conn.execute(sa.select(event_outbox).order_by(event_outbox.c.id))]


def test_add_then_read_back(store):
    before = counts(store)["version"]
    result = write(store, [host(owner="张三")])
    assert result["added"] == ["web01.bj.example.com"]
    assert result["version"] == before + 1
    with store.connect() as conn:
        rec = repo.get_host(conn, "web01.bj.example.com")
    assert rec["owner"] == "张三"
    assert rec["lines"] == {"telecom": "203.0.113.11", "unicom": "198.51.100.11"}
    assert rec["apps"] == {"shop": {"port": 8000, "health_url": "/healthz"}}
    assert rec["version"] == before + 1
    assert events(store) == [
        (
            "saltops/cmdb/changed",
            {
                "version": before + 1,
                "action": "upsert",
                "count": 1,
                "balancers": [],
                "hostnames": ["web01.bj.example.com"],
                "all": False,
            },
        )
    ]


def test_one_version_per_write_and_unchanged_writes_do_not_count(store):
    start = counts(store)["version"]
    write(store, many(3))
    write(store, many(3))  # identical: nothing to commit
    assert counts(store)["version"] == start + 1
    write(store, many(1, status="maintenance"))
    after = counts(store)
    assert after["version"] == start + 2
    assert after["audit_log"] == 4
    assert after["event_outbox"] == 2


@pytest.mark.parametrize(
    "filters,expected",
    [
        ({"role": "db"}, ["db01"]),
        ({"role": ["db", "lb"]}, ["db01", "lb01"]),
        ({"line": "cernet"}, ["lb01"]),
        ({"idc": "sh-idc1"}, ["db01"]),
        ({"env": "staging"}, ["web02"]),
        ({"status": "maintenance"}, ["web02"]),
        ({"platform": "CentOS-7"}, ["db01"]),
        ({"app": "shop"}, ["web01", "web02"]),
        ({"role": "web", "env": "prod"}, ["web01"]),
        ({"role": "web", "idc": "sh-idc1"}, []),
        ({}, ["db01", "lb01", "web01", "web02"]),
    ],
)
def test_filters(store, filters, expected):
    write(
        store,
        [
            host("web01.x.com"),
            host("web02.x.com", env="staging", status="maintenance"),
            host("lb01.x.com", roles=["base", "lb"], apps={}, lines={"cernet": "192.0.2.1"}),
            host(
                "db01.x.com", roles=["db"], idc="sh-idc1", platform="CentOS-7", apps={"mysql": {"port": 3306}}
            ),
        ],
    )
    with store.connect() as conn:
        found = [r["hostname"].split(".")[0] for r in repo.list_hosts(conn, **filters)]
    assert found == expected


def test_unknown_filter_is_an_error(store):
    with store.connect() as conn, pytest.raises(ValidationError, match="unknown filter"):
        repo.list_hosts(conn, colour="red")


@pytest.mark.parametrize("value", INJECTIONS + NON_ASCII)
def test_injection_and_non_ascii_filter_values_match_nothing_and_break_nothing(store, value):
    write(store, many(2))
    before = counts(store)
    with store.connect() as conn:
        for key in repo.FILTERS:
            assert repo.list_hosts(conn, **{key: value}) == []
    assert counts(store) == before


@pytest.mark.parametrize("owner", NON_ASCII + ["a.b@example.com", "ops+oncall"])
def test_non_ascii_owner_and_settings_survive_storage(store, owner):
    settings = {"title": f"{owner} 的商城", "list": ["é", 1, 2.5, None, True, {"k": "Ω"}]}
    write(store, [host(owner=owner, apps={"shop": settings})])
    with store.connect() as conn:
        rec = repo.get_host(conn, "web01.bj.example.com")
    assert rec["owner"] == owner
    assert rec["apps"]["shop"] == settings


@pytest.mark.parametrize(
    "field", ["hostname", "ip", "platform", "machine_type", "idc", "env", "status", "owner"]
)
def test_bad_text_in_any_field_changes_nothing(store, field):
    write(store, many(2))
    before = counts(store)
    for value in INJECTIONS + (NON_ASCII if field != "owner" else []):
        with pytest.raises(ValidationError) as info:
            write(store, many(2, start=10) + [host(**{field: value})])
        assert "nothing was changed" in str(info.value)
        assert "record 3" in str(info.value)
    assert counts(store) == before


def test_duplicate_hostnames_in_one_write_are_refused(store):
    before = counts(store)
    with pytest.raises(ValidationError) as info:
        write(store, [host("a.example.com"), host("b.example.com"), host("A.example.com.")])
    assert info.value.problems == ["record 3: duplicate hostname 'a.example.com' (first at record 1)"]
    assert counts(store) == before


def test_add_mode_refuses_existing_and_update_mode_refuses_missing(store):
    write(store, [host("a.example.com")])
    before = counts(store)
    with pytest.raises(ValidationError, match="already in the CMDB"):
        write(store, [host("a.example.com", status="offline"), host("b.example.com")], mode="add")
    with pytest.raises(ValidationError, match="is not in the CMDB"):
        write(store, [host("a.example.com", status="offline"), host("b.example.com")], mode="update")
    assert counts(store) == before


def test_update_changes_only_given_fields_and_audits_before_after(store):
    write(store, [host()])
    result = repo.update(store, "bob", "web01.bj.example.com", {"status": "maintenance"}, RULES)
    assert result["updated"] == ["web01.bj.example.com"]
    assert result["diff"] == {"web01.bj.example.com": {"status": ["online", "maintenance"]}}
    with store.connect() as conn:
        rec = repo.get_host(conn, "web01.bj.example.com")
        from saltops.store import audit

        rows = audit.history(conn, object_type="host", object_id="web01.bj.example.com")
    assert rec["status"] == "maintenance" and rec["apps"] == host()["apps"]
    assert [r["actor"] for r in rows] == ["bob", "alice"]
    assert rows[0]["before"]["status"] == "online" and rows[0]["after"]["status"] == "maintenance"
    with pytest.raises(NotFound):
        repo.update(store, "bob", "nope.example.com", {"status": "offline"}, RULES)


def test_remove_decommissions_and_purge_deletes_with_tombstone(store):
    write(store, [host("a.example.com"), host("b.example.com")])
    removed = repo.remove(store, "carol", ["a.example.com"])
    assert removed["removed"] == ["a.example.com"]
    with store.connect() as conn:
        assert repo.get_host(conn, "a.example.com")["status"] == "decommissioned"
    again = repo.remove(store, "carol", ["a.example.com"])
    assert again["unchanged"] == ["a.example.com"] and again["version"] == removed["version"]
    purged = repo.remove(store, "carol", ["a.example.com", "b.example.com"], purge=True)
    assert purged["purged"] == ["a.example.com", "b.example.com"]
    with store.connect() as conn:
        assert repo.list_hosts(conn) == []
        changed, gone = repo.changed_since(conn, removed["version"])
    assert changed == [] and gone == ["a.example.com", "b.example.com"]
    assert counts(store)["cmdb_host_roles"] == 0  # children went with the hosts


def test_remove_of_unknown_host_changes_nothing(store):
    write(store, [host("a.example.com")])
    before = counts(store)
    with pytest.raises(NotFound, match="nope.example.com"):
        repo.remove(store, "carol", ["a.example.com", "nope.example.com"])
    assert counts(store) == before


def test_readding_a_purged_host_clears_its_tombstone(store):
    write(store, [host("a.example.com")])
    repo.remove(store, "carol", ["a.example.com"], purge=True)
    version = write(store, [host("a.example.com")])["version"]
    with store.connect() as conn:
        changed, gone = repo.changed_since(conn, version - 1)
    assert [r["hostname"] for r in changed] == ["a.example.com"] and gone == []


def test_changes_to_backends_name_the_balancers_of_the_same_env(store):
    write(
        store,
        [
            host("lb01.x.com", roles=["lb"], env="prod"),
            host("lb02.x.com", roles=["lb"], env="staging"),
            host("web01.x.com", roles=["web"], env="prod"),
            host("db01.x.com", roles=["db"], env="prod"),
        ],
    )
    web = repo.update(store, "a", "web01.x.com", {"status": "offline"}, RULES, lb_serves=LB_SERVES)
    assert web["balancers"] == ["lb01.x.com"]
    db = repo.update(store, "a", "db01.x.com", {"status": "offline"}, RULES, lb_serves=LB_SERVES)
    assert db["balancers"] == []
    moved = repo.update(store, "a", "web01.x.com", {"env": "staging"}, RULES, lb_serves=LB_SERVES)
    assert moved["balancers"] == ["lb01.x.com", "lb02.x.com"]
    with store.connect() as conn:
        names, pairs = repo.affected_by_version(conn, moved["version"])
    assert names == ["web01.x.com"]
    assert pairs[0][0]["env"] == "prod" and pairs[0][1]["env"] == "staging"


def test_big_writes_announce_all_instead_of_names(store):
    write(store, many(repo.EVENT_HOSTNAME_LIMIT + 1))
    ((_tag, data),) = events(store)
    assert (
        data["all"] is True and data["hostnames"] is None and data["count"] == repo.EVENT_HOSTNAME_LIMIT + 1
    )


def test_dry_run_shows_the_diff_and_writes_nothing(store):
    write(store, [host("a.example.com")])
    before = counts(store)
    result = write(store, [host("a.example.com", owner="李四"), host("b.example.com")], dry_run=True)
    assert result["dry_run"] is True
    assert result["added"] == ["b.example.com"]
    assert result["diff"] == {"a.example.com": {"owner": ["web-team", "李四"]}}
    assert counts(store) == before


SEEDED = [host("lb01.x.com", roles=["lb"], env="prod"), host("lb02.x.com", roles=["lb"], env="staging"),
          host("web01.x.com", roles=["web"], env="prod")]


@pytest.mark.parametrize(
    "seeded, records, touched",
    [
        # balancers and backends new in the same import
        ([], [host("lb01.x.com", roles=["lb"], env="prod"), host("lb02.x.com", roles=["lb"], env="prod"),
              host("web01.x.com", roles=["web"], env="prod"), host("lb09.x.com", roles=["lb"], env="staging")],
         ["lb01.x.com", "lb02.x.com"]),
        # a backend moved to another env: the balancers of both
        (SEEDED, [host("web01.x.com", roles=["web"], env="staging")], ["lb01.x.com", "lb02.x.com"]),
        # a balancer that stops being one, beside a backend change
        (SEEDED, [host("lb01.x.com", roles=["base"], env="prod"), host("web01.x.com", roles=["web"], owner="ops")],
         []),
    ],
    ids=["new", "moved", "lb-role-dropped"],
)
def test_a_dry_run_names_the_balancers_the_write_would(store, seeded, records, touched):
    if seeded:
        write(store, seeded)
    before = counts(store)
    dry = write(store, records, dry_run=True)
    assert counts(store) == before
    assert dry["balancers"] == touched
    assert write(store, records)["balancers"] == touched
