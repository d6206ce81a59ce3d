"""Import and export: parsing with line numbers, all-or-nothing imports, exact round trips."""

import json

import pytest

from saltops.cmdb import import_export, repo
from saltops.cmdb import version as cmdb_version
from saltops.errors import ValidationError
from tests.support.cmdb_kit import INJECTIONS, LB_SERVES, RULES, counts, host, many, wipe

HEADER = "hostname,ip,roles,platform,machine_type,idc,env,status,owner,lines,apps\n"


def do_import(store, text, fmt, **kw):
    return import_export.import_hosts(store, "importer", text, fmt, RULES, lb_serves=LB_SERVES, **kw)


def export(store, fmt, **filters):
    with store.connect() as conn:
        return import_export.export_hosts(
            repo.list_hosts(conn, **filters), fmt, version=cmdb_version.current(conn)
        )


def import_error(store, text, fmt, **kw):
    before = counts(store)
    with pytest.raises(ValidationError) as info:
        do_import(store, text, fmt, **kw)
    assert counts(store) == before, "a failed import changed the database"
    return info.value


# -- CSV ---------------------------------------------------------------------------------------


def test_csv_import(store):
    text = HEADER + (
        'web01.x.com,10.0.0.1,base;web,Debian-12,vm,bj-idc1,prod,online,张三,telecom=203.0.113.1;unicom=198.51.100.1,"{""shop"": {""port"": 8000}}"\n'
        "db01.x.com,10.0.0.2,db,Debian-12,physical,bj-idc1,prod,,dba-team,,\n"
    )
    result = do_import(store, text, "csv")
    assert result["added"] == ["web01.x.com", "db01.x.com"] and result["records"] == 2
    with store.connect() as conn:
        web = repo.get_host(conn, "web01.x.com")
        db = repo.get_host(conn, "db01.x.com")
    assert web["lines"] == {"telecom": "203.0.113.1", "unicom": "198.51.100.1"}
    assert web["apps"] == {"shop": {"port": 8000}} and web["owner"] == "张三"
    assert db["status"] == "online" and db["lines"] == {} and db["apps"] == {}


def test_csv_columns_in_any_order_and_comma_separated_roles():
    records, problems = import_export.parse_csv('owner,hostname,roles\nops,a.x.com,"web,base"\n')
    assert problems == []
    assert records == [
        {"__where__": "line 2", "owner": "ops", "hostname": "a.x.com", "roles": ["web", "base"]}
    ]


def test_every_bad_csv_row_is_reported_with_its_line(store):
    text = (
        HEADER
        + "ok1.x.com,10.0.0.1,web,Debian-12,vm,bj-idc1,prod,online,ops,,\n"
        + "bad_name,10.0.0.2,web,Debian-12,vm,bj-idc1,prod,online,ops,,\n"  # line 3
        + "\n"
        + "ip.x.com,10.0.0.300,web,Debian-12,vm,bj-idc1,prod,online,ops,,\n"  # line 5
        + 'multi.x.com,10.0.0.4,web,Debian-12,vm,bj-idc1,prod,online,ops,,"{\n""a"": {}}"\n'  # lines 6-7: app 'a' ok
        + "role.x.com,10.0.0.5,mailer,Debian-12,vm,bj-idc1,prod,online,ops,,\n"  # line 8
        + "line.x.com,10.0.0.6,web,Debian-12,vm,bj-idc1,prod,online,ops,satellite=1.2.3.4,\n"  # line 9
        + "ok1.x.com,10.0.0.7,web,Debian-12,vm,bj-idc1,prod,online,ops,,\n"  # line 10: duplicate
        + "short.x.com,10.0.0.8\n"  # line 11
        + "json.x.com,10.0.0.9,web,Debian-12,vm,bj-idc1,prod,online,ops,,{not json}\n"  # line 12
        + "pair.x.com,10.0.0.10,web,Debian-12,vm,bj-idc1,prod,online,ops,telecom,\n"  # line 13
    )
    err = import_error(store, text, "csv")
    lines = [p.split(":")[0] for p in err.problems]
    assert lines == ["line 3", "line 5", "line 8", "line 9", "line 10", "line 11", "line 12", "line 13"]
    text = "\n".join(err.problems)
    assert "line 10: duplicate hostname 'ok1.x.com' (first at line 2)" in text
    assert "line 11: 2 cells, the header has 11 columns" in text
    assert "line 12: apps is not a JSON object" in text
    assert "line 13: lines entry 'telecom' is not line=address" in text
    assert "8 problem(s); nothing was changed" in str(err)


@pytest.mark.parametrize(
    "text,fragment",
    [
        (HEADER + 'a.x.com,"10.0.0.1,web\n', "not well-formed CSV"),
        (HEADER + 'a.x.com,"10.0.0.1"x,web,Debian-12,vm,bj-idc1,prod,online,ops,,\n', "not well-formed CSV"),
        ("hostname,ip,colour\n", "unknown column(s) 'colour'"),
        ("ip,owner\n1.2.3.4,ops\n", "no 'hostname' column"),
        ("hostname,ip,ip\n", "given twice: 'ip'"),
        ("", "is empty"),
        ("\n\n", "is empty"),
    ],
)
def test_malformed_csv_gives_a_clear_error(store, text, fragment):
    assert fragment in str(import_error(store, text, "csv"))


def test_non_utf8_input_names_its_line():
    with pytest.raises(ValidationError) as info:
        import_export.decode(b"hostname\nok.x.com\n\xff\xfe.x.com\n", "hosts.csv")
    assert "hosts.csv is not UTF-8" in str(info.value) and "line 3" in str(info.value)


def test_header_only_imports_nothing(store):
    assert "holds no hosts" in str(import_error(store, HEADER, "csv"))


# -- YAML / JSON -------------------------------------------------------------------------------


YAML_DOC = """\
# a comment
hosts:
  - hostname: web01.x.com
    ip: 10.0.0.1
    roles: [base, web]
    platform: Debian-12
    machine_type: vm
    idc: bj-idc1
    env: prod
    owner: José
    apps:
      shop: {port: 8000, title: "商城"}
  - hostname: bad_name
    ip: 10.0.0.999
    roles: [web]
    platform: Debian-12
    machine_type: vm
    idc: bj-idc1
    env: prod
    owner: ops
  - just a string
  - hostname: dup.x.com
    hostname: dup2.x.com
    ip: 10.0.0.3
  - hostname: web01.x.com
    ip: 10.0.0.4
    roles: [web]
    platform: Debian-12
    machine_type: vm
    idc: mars
    env: prod
    owner: ops
"""


def test_yaml_problems_carry_the_line_of_their_record(store):
    err = import_error(store, YAML_DOC, "yaml")
    text = "\n".join(err.problems)
    assert "line 13: hostname 'bad_name'" in text
    assert "line 14" not in text  # a record's problems are reported at its first line
    assert "line 13: ip '10.0.0.999' is not an IP address" in text
    assert "line 21: a host must be a mapping of fields" in text
    assert "line 23: key 'hostname' is given twice" in text
    assert "line 25: unknown idc 'mars'" in text
    assert (
        "line 25: duplicate hostname 'web01.x.com' (first at line 3)" not in text
    )  # bad records are not counted
    assert [p.split(":")[0] for p in err.problems] == sorted(
        (p.split(":")[0] for p in err.problems), key=lambda s: int(s.split()[1])
    )


def test_yaml_list_at_top_level_is_accepted(store):
    doc = "- " + json.dumps(host("a.x.com"), ensure_ascii=False) + "\n"
    assert do_import(store, doc, "yaml")["added"] == ["a.x.com"]


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("hosts:\n  - hostname: a\n   bad: indent\n", "not well-formed YAML"),
        ("hosts: [unclosed\n", "not well-formed YAML"),
        ("hosts: {a: 1}\n", "expected a list of hosts"),
        ("servers: []\n", "only 'hosts'"),
        ("just text\n", "expected a list of hosts"),
        ("", "is empty"),
        ("---\n- a\n---\n- b\n", "not well-formed YAML"),
        ('{"hosts": [', "not well-formed YAML/JSON"),
    ],
)
def test_malformed_yaml_gives_a_clear_error(store, text, fragment):
    assert fragment in str(import_error(store, text, "yaml"))


def test_yaml_values_json_cannot_hold_are_rejected(store):
    doc = YAML_DOC.split("  - hostname: bad_name")[0].replace("{port: 8000", "{port: 8000, since: 2024-01-01")
    err = import_error(store, doc, "yaml")
    assert "unsupported value type date" in str(err)


# -- all-or-nothing, dry run -------------------------------------------------------------------


def test_one_bad_row_among_many_writes_nothing(store):
    do_import(store, import_export.export_hosts(many(5), "csv"), "csv")
    before = counts(store)
    records = many(500, start=100)
    records[321]["roles"] = ["web", "mailer"]
    err = import_error(store, import_export.export_hosts(records, "csv"), "csv")
    assert err.problems == [
        "line 323: unknown role 'mailer' (known: base, cache, db, lb, monitor, web)",
    ]
    assert counts(store) == before


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_strings_in_an_import_change_nothing(store, value):
    do_import(store, import_export.export_hosts(many(3), "yaml"), "yaml")
    for field in ("hostname", "ip", "idc", "env", "status", "platform", "machine_type", "owner"):
        doc = import_export.export_hosts(many(2, start=10) + [host(**{field: value})], "yaml")
        err = import_error(store, doc, "yaml")
        assert err.problems and all(p.startswith("line ") for p in err.problems)


def test_dry_run_reports_adds_and_diffs(store):
    do_import(store, import_export.export_hosts([host("a.x.com"), host("b.x.com")], "csv"), "csv")
    before = counts(store)
    doc = import_export.export_hosts(
        [host("a.x.com", roles=["web"], owner="王五"), host("b.x.com"), host("c.x.com")], "csv"
    )
    result = do_import(store, doc, "csv", dry_run=True)
    assert result["dry_run"] is True
    assert result["added"] == ["c.x.com"] and result["unchanged"] == ["b.x.com"]
    assert result["diff"] == {"a.x.com": {"roles": [["base", "web"], ["web"]], "owner": ["web-team", "王五"]}}
    assert counts(store) == before


# -- export / round trip -----------------------------------------------------------------------


ODD_HOSTS = [
    host(
        "a.x.com",
        owner="张三",
        apps={"shop": {"title": '商城, "quoted"; semi=colon', "n": 1.5, "flag": True}},
    ),
    host("b.x.com", owner="José-Núñez", roles=["db"], lines={}, apps={}, status="maintenance"),
    host(
        "c.x.com",
        owner="Ωμέγα",
        ip="2001:db8::5",
        lines={"bgp": "2001:db8::6", "cernet": "192.0.2.6"},
        apps={
            "x": {
                "yes": "yes",
                "num_text": "0123",
                "null": None,
                "nested": [{"k": "line\nbreak"}],
                "big": 2**60,
            }
        },
    ),
]


@pytest.mark.parametrize("fmt", import_export.FORMATS)
def test_export_import_round_trips_exactly(store, fmt):
    do_import(store, import_export.export_hosts(ODD_HOSTS, "json"), "json")
    first = export(store, fmt)
    # Importing the export into the same CMDB changes nothing...
    before = counts(store)
    assert do_import(store, first, fmt)["unchanged"] == ["a.x.com", "b.x.com", "c.x.com"]
    assert counts(store) == before
    # ...and into an empty CMDB gives the same records and the same text.
    with store.connect() as conn:
        records = repo.list_hosts(conn)
    wipe(store)
    do_import(store, first, fmt)
    with store.connect() as conn:
        again = repo.list_hosts(conn)
    strip = [{k: v for k, v in r.items() if k != "version"} for r in records]
    assert [{k: v for k, v in r.items() if k != "version"} for r in again] == strip
    second = export(store, fmt)
    if fmt == "csv":
        assert second == first
    else:
        # The header names the CMDB version the export was read at; the hosts are identical.
        assert _without_version(second, fmt) == _without_version(first, fmt)


def _without_version(text, fmt):
    if fmt == "json":
        doc = json.loads(text)
        doc.pop("version")
        return doc
    return "\n".join(line for line in text.splitlines() if not line.startswith("version:"))


def test_export_filters_and_formats(store):
    do_import(store, import_export.export_hosts(ODD_HOSTS, "json"), "json")
    doc = json.loads(export(store, "json", role="db"))
    assert [h["hostname"] for h in doc["hosts"]] == ["b.x.com"]
    assert "version" not in doc["hosts"][0]
    assert "张三" in export(store, "yaml")  # readable, not escaped
    with pytest.raises(ValidationError, match="unknown format"):
        import_export.export_hosts([], "xml")


def test_read_source_from_paths_and_text(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text("hosts: []\n", encoding="utf-8")
    roots = [str(tmp_path)]
    assert import_export.read_source(path=str(path), allowed_roots=roots) == ("hosts: []\n", "yaml", str(path))
    assert import_export.read_source(text="hostname,ip\n")[1] == "csv"
    assert import_export.read_source(text='{"hosts": []}')[1] == "json"
    assert import_export.read_source(text="- hostname: a\n")[1] == "yaml"
    with pytest.raises(ValidationError, match="cannot tell the format"):
        import_export.read_source(text="what is this")
    with pytest.raises(ValidationError, match="cannot read"):
        import_export.read_source(path=str(tmp_path / "missing.csv"), allowed_roots=roots)
    with pytest.raises(ValidationError, match="from its name"):
        import_export.read_source(path=str(tmp_path / "hosts.txt"), allowed_roots=roots)
    with pytest.raises(ValidationError, match="exactly one"):
        import_export.read_source(path=str(path), text="x", allowed_roots=roots)
    with pytest.raises(ValidationError, match="unknown format"):
        import_export.read_source(text="x", fmt="xml")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "h.csv").write_text("hostname\n")
    allowed = tmp_path / "imports"
    allowed.mkdir()
    (allowed / "h.csv").write_text("hostname\n")
    assert import_export.read_source(path=str(allowed / "h.csv"), allowed_roots=[str(allowed)])[1] == "csv"
    with pytest.raises(ValidationError, match="outside the directories"):
        import_export.read_source(path=str(allowed / ".." / "elsewhere" / "h.csv"), allowed_roots=[str(allowed)])
    (allowed / "link.csv").symlink_to(outside / "h.csv")
    with pytest.raises(ValidationError, match="outside the directories"):
        import_export.read_source(path=str(allowed / "link.csv"), allowed_roots=[str(allowed)])
