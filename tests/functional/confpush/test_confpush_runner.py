"""The ``confpush`` runner through Salt's loader: sets, versions, import/export, history, refusals."""

import os

import pytest
import sqlalchemy as sa
import yaml

from saltops.confpush.schema import sets
from saltops.store import audit
from tests.support.refusals import assert_refused

SPEC = {
    "roots": ["/etc/fshop"],
    "values": {"port": 8080, "api_token": "pillar:fshop:token"},
    "files": [
        {
            "path": "/etc/fshop/app.json",
            "template": '{"port": {{ values.port }}}\n',
            "validator": "python3 -m json.tool",
        },
        {
            "path": "/etc/fshop/nginx.conf",
            "template": "listen {{ values.port }};\n",
            "action": "reload",
            "service": "nginx",
        },
    ],
    "comment": "first",
}


def _stored(run):
    with run.store.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(sets)).scalar()


def test_every_function_has_a_cli_example(run):
    names = sorted(k for k in run.funcs if k.startswith("confpush."))
    assert names == [
        f"confpush.{n}"
        for n in sorted(
            [
                "abort",
                "diff",
                "drift",
                "export",
                "history",
                "import",
                "migrate",
                "on_cmdb_change",
                "push",
                "resume",
                "rollback",
                "set",
                "show",
                "status",
                "versions",
            ]
        )
    ]
    for name in names:
        assert "CLI Example:" in run.funcs[name].__doc__, name


def test_set_stores_versions_audited_with_the_salt_user(run):
    first = run("set", "fshop", "test", SPEC, user="alice")
    assert first["version"] == 1 and first["created"] is True
    again = run("set", "fshop", "test", yaml.safe_dump(SPEC), user="bob")
    assert again["version"] == 1 and again["created"] is False
    second = run("set", "fshop", "test", dict(SPEC, values={"port": 9090}), user="bob")
    assert second["version"] == 2
    assert [v["version"] for v in run("versions", "fshop", "test")] == [2, 1]
    assert run("show", "fshop", "test", version=1)["spec"]["values"]["api_token"] == "pillar:fshop:token"
    with run.store.connect() as conn:
        rows = audit.history(conn, object_type="confpush_set", object_id="fshop/test")
    assert [r["actor"] for r in rows] == ["bob", "alice"]


@pytest.mark.parametrize(
    "args, error",
    [
        (("fshop", "nowhere", SPEC), "env 'nowhere' is not one of the CMDB's envs"),
        (("Bad App", "test", SPEC), "app 'Bad App' is invalid"),
        (("fshop", "test", "files: [unclosed"), "spec is not valid YAML"),
        (("fshop", "test", dict(SPEC, values={"db_password": "hunter2"})), "looks like a secret"),
        (("fshop", "test", dict(SPEC, roots=["/etc/passwd.d"])), "outside the set's roots"),
    ],
)
def test_bad_sets_are_refused_and_store_nothing(run, args, error):
    before = _stored(run)
    assert_refused(run("set", *args), error)
    assert _stored(run) == before


def test_export_then_import_round_trips_the_set(run, tmp_path):
    run("set", "fshop", "test", SPEC)
    exported = run("export", "fshop", "test", str(tmp_path / "set"))
    assert os.path.exists(tmp_path / "set" / "confpush.yml")
    assert (
        tmp_path / "set" / "files" / "etc" / "fshop" / "nginx.conf"
    ).read_text() == "listen {{ values.port }};\n"
    assert_refused(run("export", "fshop", "test", str(tmp_path / "set")), "is not an empty directory")
    imported = run("import", "fshop", "staging", str(tmp_path / "set"))
    assert imported["created"] is True
    shown = run("show", "fshop", "staging")["spec"]
    original = run("show", "fshop", "test", version=exported["version"])["spec"]
    assert shown["files"] == original["files"] and shown["values"] == original["values"]


def test_import_refuses_binary_files_and_sources_outside_the_directory(run, tmp_path):
    base = tmp_path / "bad"
    (base / "files").mkdir(parents=True)
    (base / "files" / "blob").write_bytes(b"\xff\xfe\x00binary")
    (tmp_path / "secret").write_text("outside")
    (base / "confpush.yml").write_text(
        yaml.safe_dump(
            {
                "roots": ["/etc/fshop"],
                "files": [
                    {"path": "/etc/fshop/a", "source": "files/blob"},
                    {"path": "/etc/fshop/b", "source": "../secret"},
                ],
            }
        )
    )
    result = run("import", "fshop", "dev", str(base))
    assert_refused(result, "cannot import")
    assert "files/blob is binary" in result["error"] and "is outside" in result["error"]
    assert_refused(run("show", "fshop", "dev"), "no config set for fshop in dev")


def test_push_to_an_app_no_host_runs_is_refused(run):
    run("set", "fshop", "test", SPEC)
    assert_refused(run("push", "fshop", "test"), "no online host runs fshop in test")
    assert_refused(run("rollback", "fshop", "test", to="two"), "to must be a whole number")
    assert_refused(run("history", "fshop", "prodx"), "env 'prodx' is not one of the CMDB's envs")
    assert run("history", "fshop", "test") == []


def test_on_cmdb_change_takes_only_a_version_and_reads_the_rest_from_the_store(run):
    assert_refused(run("on_cmdb_change", version="1; rm -rf /"), "version must be a whole number")
    assert_refused(run("on_cmdb_change", version=0), "version must be a positive CMDB version")
    # A version no change produced names no host: nothing to push.
    result = run("on_cmdb_change", version=10**9, user="Reactor")
    assert (result["version"], result["pushes"], result["refused"]) == (10**9, [], [])
