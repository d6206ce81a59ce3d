"""The ``cmdb`` runner through Salt's loader: every function, its errors, and what it leaves behind."""

import json
import os
import pathlib
import re

import pytest
import salt.output

from saltops.cmdb import api, import_export
from saltops.store import audit, outbox
from tests.support.cmdb_kit import CONF, INJECTIONS, counts, host
from tests.support.refusals import assert_refused

ADD = {
    "ip": "10.10.1.11",
    "roles": "base,web",
    "platform": "Debian-12",
    "machine_type": "vm",
    "idc": "bj-idc1",
    "env": "prod",
    "owner": "张三",
    "lines": {"telecom": "203.0.113.11"},
    "apps": {"shop": {"port": 8000, "title": "商城"}},
}


def seed(run, *records):
    """Write hosts directly through the core (no event firing, so no wait for an absent master)."""
    for rec in records or (
        host("web01.x.com"),
        host("lb01.x.com", roles=["lb"]),
        host("db01.x.com", roles=["db"]),
    ):
        api.add(run.store, CONF, "seed", rec)


def test_every_function_has_a_cli_example(run):
    names = sorted(k for k in run.funcs if k.startswith("cmdb."))
    assert names == [
        "cmdb.add",
        "cmdb.drift",
        "cmdb.export",
        "cmdb.history",
        "cmdb.import",
        "cmdb.list",
        "cmdb.refresh",
        "cmdb.refresh_after_outage",
        "cmdb.remove",
        "cmdb.show",
        "cmdb.targets",
        "cmdb.update",
    ]
    for name in names:
        assert "CLI Example:" in run.funcs[name].__doc__, name


def test_add_show_and_audit_name_the_salt_user(run):
    result = run("add", "web01.x.com", user="alice", **ADD)
    assert result["added"] == ["web01.x.com"]
    # No master here: the change is committed and its event waits in the outbox.
    assert result["events_pending"] == 1 and "next CMDB write fires them" in result["warning"]
    shown = run("show", "WEB01.x.com")
    assert (
        shown["owner"] == "张三"
        and shown["roles"] == ["base", "web"]
        and shown["apps"]["shop"]["title"] == "商城"
    )
    (row,) = run("history", "web01.x.com")
    assert row["actor"] == "alice" and row["action"] == "add"


def test_add_rejects_bad_input_with_every_problem_and_changes_nothing(run):
    seed(run)
    before = counts(run.store)
    info = assert_refused(
        run(
            "add",
            "bad_host",
            ip="10.0.0.300",
            roles="web,mailer",
            platform="Debian-12",
            machine_type="vm",
            idc="mars",
            env="prod",
            owner="x'; DROP TABLE cmdb_hosts; --",
        )
    )
    text = info["error"]
    for fragment in (
        "hostname 'bad_host'",
        "ip '10.0.0.300'",
        "unknown role 'mailer'",
        "unknown idc 'mars'",
        "owner \"x'; DROP TABLE",
        "nothing was changed",
    ):
        assert fragment in text
    assert_refused(run("add", "web01.x.com", **ADD), "already in the CMDB")
    assert counts(run.store) == before


def test_acting_user_cannot_be_passed_as_an_argument(run):
    assert_refused(run("add", "web09.x.com", actor="mallory", **ADD), r"unknown argument\(s\) actor")
    seed(run, host("web09.x.com"))
    assert_refused(run("update", "web09.x.com", actor="mallory", status="offline"), "unknown field.*actor")


def test_update(run):
    seed(run)
    result = run(
        "update", "web01.x.com", user="bob", status="maintenance", __pub_user="someone", __pub_fun="x"
    )
    assert result["diff"] == {"web01.x.com": {"status": ["online", "maintenance"]}}
    assert run("show", "web01.x.com")["status"] == "maintenance"
    assert run("history", "web01.x.com", actor="bob")[0]["after"]["status"] == "maintenance"
    before = counts(run.store)
    assert_refused(run("update", "nope.x.com", status="offline"), "'nope.x.com' is not in the CMDB")
    assert_refused(run("update", "web01.x.com", status="broken"), "status 'broken'")
    assert_refused(run("update", "web01.x.com"), "no fields to change")
    assert counts(run.store) == before


def test_remove_and_purge(run):
    seed(run)
    assert run("remove", "web01.x.com")["removed"] == ["web01.x.com"]
    assert run("show", "web01.x.com")["status"] == "decommissioned"
    assert run("remove", "web01.x.com,db01.x.com", purge=True)["purged"] == ["db01.x.com", "web01.x.com"]
    assert_refused(run("show", "web01.x.com"), "not in the CMDB")
    before = counts(run.store)
    assert_refused(run("remove", "lb01.x.com,nope.x.com"), "not in the CMDB: nope.x.com")
    assert_refused(run("remove", INJECTIONS[0]), "RFC 1123")
    assert counts(run.store) == before


def test_list_and_targets(run):
    seed(
        run,
        host("web01.x.com"),
        host("web02.x.com", env="staging"),
        host("lb01.x.com", roles=["lb"]),
        host("old.x.com", status="decommissioned"),
    )
    assert [h["hostname"] for h in run("list", role="web")] == ["old.x.com", "web01.x.com", "web02.x.com"]
    assert [h["hostname"] for h in run("list", role="web,lb", env="prod", status="online")] == [
        "lb01.x.com",
        "web01.x.com",
    ]
    assert run("list", owner="nobody") == []
    assert_refused(run("list", colour="red"), "unknown filter.*colour")
    assert run("targets", role="web") == ["web01.x.com", "web02.x.com"]
    assert run("targets", role="web", sep=",") == "web01.x.com,web02.x.com"
    # What a shell script gets from `salt-run --out=txt cmdb.targets ... sep=' '`.
    printed = salt.output.out_format(run("targets", sep="\n"), "txt", run.opts)
    assert printed.split() == ["lb01.x.com", "web01.x.com", "web02.x.com"]


def import_dir(run):
    """The default import directory of the test master (``saltops:cmdb:import_roots``)."""
    path = os.path.join(run.opts["cachedir"], "saltops", "import")
    os.makedirs(path, exist_ok=True)
    return pathlib.Path(path)


def test_import_from_a_path_with_dry_run_then_for_real(run):
    seed(run)
    path = import_dir(run) / "hosts.csv"
    path.write_text(
        import_export.export_hosts([host("web01.x.com", owner="王五"), host("new.x.com")], "csv"), encoding="utf-8"
    )
    before = counts(run.store)
    dry = run("import", str(path), dry_run=True)
    assert dry["dry_run"] is True and dry["added"] == ["new.x.com"]
    assert dry["diff"] == {"web01.x.com": {"owner": ["web-team", "王五"]}}
    assert counts(run.store) == before
    done = run("import", str(path), user="importer")
    assert done["added"] == ["new.x.com"] and done["updated"] == ["web01.x.com"]
    assert counts(run.store)["version"] == before["version"] + 1
    assert {r["actor"] for r in run("history", since="1h", limit=2)} == {"importer"}


def test_import_errors_name_every_bad_line_and_change_nothing(run):
    seed(run)
    before = counts(run.store)
    text = import_export.export_hosts(
        [host("a.x.com"), host("b.x.com", ip="1.2.3"), host("c.x.com", roles=["nope"])], "csv"
    )
    info = assert_refused(run("import", text=text, format="csv"), None)
    assert "line 3: ip '1.2.3' is not an IP address" in info["error"]
    assert "line 4: unknown role 'nope'" in info["error"]
    assert_refused(run("import", text="hosts: [\n", format="yaml"), "not well-formed YAML")
    assert_refused(run("import", text='hostname,ip\n"a.x.com,1.2.3.4\n', format="csv"), "not well-formed CSV")
    assert_refused(run("import", str(import_dir(run) / "missing.csv")), "cannot read")
    # Outside the import directory: refused before anything is read.
    assert_refused(run("import", "/etc/passwd", format="csv"), "outside the directories imports may read")
    assert_refused(run("import"), "exactly one")
    assert_refused(run("import", text="hostname\n", format="csv", mode="merge"), "mode 'merge'")
    assert counts(run.store) == before


@pytest.mark.parametrize("fmt", ["csv", "yaml", "json"])
def test_export_import_round_trip_through_the_runner(run_both, fmt):
    seed(
        run_both,
        host("a.x.com", owner="José-Núñez", apps={"shop": {"title": '商城 "q", x;y', "w": [1.5, None]}}),
        host("b.x.com", owner="运维团队", lines={}, apps={}, status="offline"),
    )
    text = run_both("export", format=fmt)
    assert "运维团队" in text
    before = counts(run_both.store)
    assert run_both("import", text=text, format=fmt)["unchanged"] == ["a.x.com", "b.x.com"]
    assert counts(run_both.store) == before
    if fmt == "json":
        assert [
            h["hostname"] for h in json.loads(run_both("export", format="json", status="offline"))["hosts"]
        ] == ["b.x.com"]
    assert_refused(run_both("export", format="xml"), "unknown format 'xml'")


def test_history_arguments(run):
    seed(run)
    assert len(run("history")) == 3
    assert run("history", since="2999-01-01") == []
    assert_refused(run("history", since="last tuesday"), "since=")
    assert_refused(run("history", "x' OR '1'='1"), "RFC 1123")


def test_drift_without_keys_lists_online_hosts_as_keyless(run):
    seed(run, host("web01.x.com"), host("maint.x.com", status="maintenance"))
    report = run("drift")
    assert report["missing_key"] == [{"hostname": "web01.x.com", "key": "none"}]
    assert report["clean"] is False
    assert_refused(run("drift", timeout="soon"), "timeout")
    assert_refused(run("drift", timeout=0), "between 1 and 600")


def test_refresh_checks_the_version_and_needs_the_master_to_publish(run):
    seed(run)
    assert_refused(run("refresh", "web01.x.com"), "not a CMDB version number")
    assert_refused(run("refresh", 10**9), "does not exist yet")
    version = counts(run.store)["version"]
    # No master is running: publishing fails with a clear error, not a traceback.
    assert_refused(run("refresh", version), "saltutil.refresh_pillar|Salt master")


def test_pending_events_are_fired_by_a_later_write(run):
    seed(run)
    assert outbox.pending_count(run.store) == 3  # the core queued them; no runner flushed
    result = run("update", "web01.x.com", status="offline")
    assert result["events_pending"] == 4  # still no master: all four wait, none is lost


def test_invalid_config_and_unreachable_database_are_clear_errors(run):
    saved = run.opts["saltops"]
    try:
        run.opts["saltops"] = {"db_url": "sqlite://", "cmdb": {"roles": "web"}}
        assert_refused(run("list"), "configuration is invalid.*roles must be a list")
        run.opts["saltops"] = {"db_url": "mysql+pymysql://root:secret@127.0.0.1:9/nowhere"}
        info = assert_refused(run("show", "web01.x.com"), None)
        assert "127.0.0.1:9/nowhere is unavailable" in info["error"]
        assert "secret" not in info["error"]
    finally:
        run.opts["saltops"] = saved


def test_runner_client_aliases_user_and_failures(run):
    seed(run)
    ok = run.client.cmd(
        "cmdb.list",
        [],
        kwarg={"role": "lb"},
        pub_data={"user": "viewer"},
        print_event=False,
        full_return=True,
    )
    assert ok["success"] is True and [h["hostname"] for h in ok["return"]] == ["lb01.x.com"]
    done = run.client.cmd(
        "cmdb.import",
        [],
        kwarg={"text": import_export.export_hosts([host("z.x.com")], "yaml")},
        pub_data={"user": "eve"},
        print_event=False,
        full_return=True,
    )
    assert done["success"] is True and done["return"]["added"] == ["z.x.com"]
    assert run("history", "z.x.com")[0]["actor"] == "eve"
    bad = run.client.cmd(
        "cmdb.update", ["lb01.x.com"], kwarg={"status": "gone"}, print_event=False, full_return=True
    )
    # A refused call returns its error with retcode 1: the job is failed, salt-run exits 1.
    assert bad["success"] is False and bad["return"]["retcode"] == 1
    assert "status 'gone'" in bad["return"]["error"] and "nothing was changed" in bad["return"]["error"]
    missing = run.client.cmd("cmdb.show", ["nope.x.com"], print_event=False, full_return=True)
    assert missing["success"] is False and missing["return"]["retcode"] == 1
    assert "not in the CMDB" in missing["return"]["error"]
    again = run.client.cmd("cmdb.show", ["lb01.x.com"], print_event=False, full_return=True)
    assert again["success"] is True  # a failure does not stick to the next call
    with run.store.connect() as conn:
        assert audit.history(conn, object_id="lb01.x.com")[0]["action"] == "add"


@pytest.mark.parametrize(
    "fun, args, kwarg, fragment",
    [
        ("cmdb.update", [], {"status": "maintenance"}, "cmdb.update: missing argument(s): hostname"),
        ("cmdb.add", [], {"ip": "10.0.0.1"}, "cmdb.add: missing argument(s): hostname"),
        ("cmdb.refresh", [], {}, "cmdb.refresh: missing argument(s): version"),
        ("cmdb.show", ["a.x.com", "b.x.com"], {}, "cmdb.show: too many positional arguments"),
    ],
)
def test_arguments_that_do_not_fit_are_refused_like_any_bad_input(run, fun, args, kwarg, fragment):
    before = counts(run.store)
    done = run.client.cmd(fun, args, kwarg=kwarg, print_event=False, full_return=True)
    # Not Salt's "Passed invalid arguments" with success: a failed job, retcode 1, the usage pointer.
    assert done["success"] is False
    assert_refused(done["return"], re.escape(fragment) + r".*nothing was changed \(usage: salt-run -d ")
    assert counts(run.store) == before
