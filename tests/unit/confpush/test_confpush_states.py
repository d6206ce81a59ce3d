"""The Salt high data a push runs, and how a host's return is read."""

from saltops.confpush import config as cp_config
from saltops.confpush import model, render, results, states

SPEC = model.normalise(
    {
        "roots": ["/etc/shop"],
        "values": {"pw": "pillar:shop:pw"},
        "health_cmd": "curl -fs http://127.0.0.1/health",
        "files": [
            {
                "path": "/etc/shop/a.json",
                "template": "{}",
                "validator": "python3 -m json.tool",
                "mode": "0640",
                "action": "reload",
                "service": "shop",
            },
            {
                "path": "/etc/shop/{hostname}/b.conf",
                "template": "pw={{ values.pw }}",
                "reload_cmd": "kill -HUP 1",
            },
        ],
    },
    cp_config.load({}),
)
RECORD = {"hostname": "web01", "apps": {}}


def _args(state):
    mod = next(k for k in state if not k.startswith("__"))
    out = {}
    for arg in state[mod]:
        if isinstance(arg, dict):
            out.update(arg)
    return mod, state[mod][-1], out


def test_push_high_validates_backs_up_and_reloads_only_on_changes():
    files = render.render_host(SPEC, "shop", RECORD)
    assert [f["path"] for f in files] == ["/etc/shop/a.json", "/etc/shop/web01/b.conf"]
    high = states.push_high(SPEC, files, "web01")
    mod, fun, a = _args(high["confpush-file-0"])
    assert (mod, fun) == ("file", "managed")
    assert a["check_cmd"] == "python3 -m json.tool" and a["backup"] == "minion" and a["show_changes"] is True
    assert a["contents"] == "{}\n" and a["mode"] == "0640" and a["follow_symlinks"] is False
    _, _, secret = _args(high["confpush-file-1"])
    assert secret["name"] == "/etc/shop/web01/b.conf"
    assert secret["template"] == "jinja" and secret["show_changes"] is False
    assert "salt['pillar.get']('shop:pw', none)" in secret["contents"]
    mod, fun, keep = _args(high["confpush-keep-previous"])
    assert (mod, fun) == ("cmd", "run")
    assert keep["name"] == (
        "rm -f /etc/shop/a.json.confpush-prev && { if [ -f /etc/shop/a.json ]; then "
        "cp -p /etc/shop/a.json /etc/shop/a.json.confpush-prev; fi; } && "
        "rm -f /etc/shop/web01/b.conf.confpush-prev && { if [ -f /etc/shop/web01/b.conf ]; then "
        "cp -p /etc/shop/web01/b.conf /etc/shop/web01/b.conf.confpush-prev; fi; }"
    )
    # The copy is kept before any file is written.
    assert high["confpush-keep-previous"]["cmd"][-2]["order"] < high["confpush-file-0"]["file"][-2]["order"]
    mod, fun, reload_ = _args(high["confpush-reload-shop"])
    assert (mod, fun) == ("module", "run") and reload_["service.reload"] == [{"name": "shop"}]
    assert reload_["onchanges"] == [{"file": "confpush-file-0"}]
    _, _, health = _args(high["confpush-health"])
    assert health["onchanges"] == [{"file": "confpush-file-0"}, {"file": "confpush-file-1"}]


def test_check_high_is_file_managed_only_without_validator_or_backup():
    files = render.render_host(SPEC, "shop", RECORD)
    high = states.check_high(SPEC, files, "web01")
    assert sorted(high) == ["confpush-file-0", "confpush-file-1"]
    _, _, a = _args(high["confpush-file-0"])
    assert "check_cmd" not in a and "backup" not in a


def test_restore_high_copies_back_or_removes_new_files_then_reloads():
    high = states.restore_high(SPEC, ["/etc/shop/a.json"], "web01")
    mod, fun, back = _args(high["confpush-restore"])
    assert (mod, fun) == ("cmd", "run")
    assert back["name"] == (
        "{ if [ -f /etc/shop/a.json.confpush-prev ]; then cp -p /etc/shop/a.json.confpush-prev /etc/shop/a.json; "
        "else rm -f /etc/shop/a.json; fi; }"
    )
    _, _, reload_ = _args(high["confpush-reload-shop"])
    assert reload_["onchanges"] == [{"cmd": "confpush-restore"}]


def test_summarize_reads_changes_failures_and_non_state_returns():
    ret = {
        "file_|-confpush-file-0_|-/etc/shop/a.json_|-managed": {
            "__id__": "confpush-file-0",
            "result": True,
            "changes": {"diff": "--- \n+++ \n-a\n+b\n"},
            "comment": "ok",
        },
        "cmd_|-confpush-health_|-x_|-run": {
            "__id__": "confpush-health",
            "result": False,
            "changes": {},
            "comment": "exit 1",
        },
    }
    out = results.summarize(ret, {"confpush-file-0": "/etc/shop/a.json"})
    assert out["ok"] is False and out["failed"] == {"confpush-health": "exit 1"}
    assert (
        out["files"]["/etc/shop/a.json"]["changed"] is True
        and "+b" in out["files"]["/etc/shop/a.json"]["diff"]
    )
    assert results.summarize(["Rendering SLS failed"], {})["errors"] == ["Rendering SLS failed"]
    assert results.summarize(None, {})["errors"] == ["no answer from the minion"]


def test_a_host_path_refuses_names_that_could_leave_the_root():
    import pytest

    from saltops.errors import ValidationError

    with pytest.raises(ValidationError, match="cannot be part of a path"):
        render.host_path("/etc/shop/{hostname}.conf", "../x")
    assert render.host_path("/etc/shop/{hostname}.conf", "web01.lab") == "/etc/shop/web01.lab.conf"


def test_commands_name_the_host_where_the_set_asks_for_it():
    spec = dict(SPEC, health_cmd="test -s /etc/shop/{hostname}/b.conf")
    spec["files"] = [dict(SPEC["files"][1], reload_cmd="touch /run/{hostname}.reload")]
    high = states.push_high(spec, render.render_host(spec, "shop", RECORD), "web01")
    assert _args(high["confpush-health"])[2]["name"] == "test -s /etc/shop/web01/b.conf"
    assert _args(high["confpush-reload-cmd-0"])[2]["name"] == "touch /run/web01.reload"
