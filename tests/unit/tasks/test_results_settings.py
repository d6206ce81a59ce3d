"""Reading job returns into per-host results, and the saltops:tasks settings."""

import pytest

from saltops.errors import ConfigError
from saltops.tasks import settings
from saltops.tasks.results import host_result, minion_outcome, runner_outcome


def test_a_state_run_with_a_failed_state_fails_the_host():
    ret = {"file_|-a_|-/a_|-managed": {"result": True, "comment": "ok"},
           "service_|-b_|-nginx_|-running": {"result": False, "comment": "nginx failed to start"}}
    result = host_result({"ret": ret, "retcode": 2, "success": False}, 1000)
    assert result["ok"] is False and result["retcode"] == 2 and "nginx failed to start" in result["output"]
    assert host_result({"ret": {"x": {"result": True}}, "retcode": 0}, 1000)["ok"] is True


def test_a_script_exit_status_decides_and_its_output_is_kept():
    failed = host_result({"ret": {"retcode": 3, "stdout": "cleaning", "stderr": "disk busy"}, "retcode": 0}, 1000)
    assert failed == {"ok": False, "retcode": 3, "output": "cleaning\ndisk busy"}
    ok = host_result({"ret": {"retcode": 0, "stdout": "done", "stderr": ""}, "retcode": 0}, 1000)
    assert ok == {"ok": True, "retcode": 0, "output": "done"}


def test_a_host_without_a_return_fails_the_run_and_the_output_is_cut():
    outcome = minion_outcome(["a", "b"], {"a": {"ret": "x" * 100, "retcode": 0}}, 10)
    assert outcome.ok is False and outcome.retcode == 1
    assert outcome.hosts["a"]["output"].startswith("x" * 10) and "cut at 10 bytes" in outcome.hosts["a"]["output"]
    assert outcome.hosts["b"] == {"ok": False, "retcode": None,
                                  "output": "no return: the minion did not answer before the run ended"}
    assert outcome.output == "1/2 host(s) succeeded; failed: b"


def test_a_runner_refusal_or_a_nonzero_retcode_fails():
    assert runner_outcome({"result": False, "error": "no"}, 0, 100).ok is False
    assert runner_outcome({"rows": 3}, 1, 100).retcode == 1
    good = runner_outcome({"rows": 3}, 0, 100)
    assert good.ok and good.retcode == 0 and '"rows": 3' in good.output


def test_settings_have_defaults_and_refuse_bad_values():
    assert settings.load({})["keep_days"] == 30
    with pytest.raises(ConfigError, match="unknown key"):
        settings.load({"tasks": {"keep_dayz": 3}})
    with pytest.raises(ConfigError, match="refresh must be a positive number"):
        settings.load({"tasks": {"refresh": 0}})
    with pytest.raises(ConfigError, match="default_timeout must lie between"):
        settings.load({"tasks": {"default_timeout": 1}})
    with pytest.raises(ConfigError, match="alarm_url"):
        settings.load({"tasks": {"alarm_url": "ftp://x"}})
