"""Refusals with problems (saltops.runnerkit.refuses) and the argument helpers runners share."""

import inspect

import pytest
from salt.exceptions import CommandExecutionError

from saltops import runnerkit
from saltops.errors import Conflict, ValidationError

__virtualname__ = "demo"
__context__ = {}


@runnerkit.refuses
def act(name=None, count=None):
    if name == "invalid":
        raise ValidationError("invalid request; nothing was changed", ["name is bad", "count is bad"])
    if name == "busy":
        raise Conflict("another run holds the lock")
    if name == "salt":
        raise CommandExecutionError("the master is gone")
    if name == "refused":
        raise runnerkit.Refused("refused here", ["first", "second"])
    return {"name": name, "count": count}


def test_a_call_that_passes_returns_its_value_and_clears_the_retcode():
    __context__["retcode"] = 1
    assert act(name="x", count=2) == {"name": "x", "count": 2}
    assert __context__["retcode"] == 0


def test_unknown_arguments_are_refused_by_name():
    out = act(name="x", cuont=2)
    assert out == {
        "result": False,
        "error": "demo.act: unknown argument(s) cuont; it takes name, count; "
        "nothing was changed (usage: salt-run -d demo.act)",
        "problems": ["unknown argument 'cuont'"],
        "retcode": 1,
    }
    assert __context__["retcode"] == 1


@pytest.mark.parametrize(
    "name, error, problems",
    [
        ("invalid", "invalid request; nothing was changed", ["name is bad", "count is bad"]),
        ("busy", "another run holds the lock", ["another run holds the lock"]),
        ("salt", "the master is gone", ["the master is gone"]),
        ("refused", "refused here", ["first", "second"]),
    ],
)
def test_errors_become_refusals_with_their_problems(name, error, problems):
    out = act(name=name)
    assert out["result"] is False and out["retcode"] == 1
    assert out["error"] == error and out["problems"] == problems


def test_salt_sees_a_var_keyword_so_unknown_arguments_reach_the_check():
    params = inspect.signature(act).parameters
    assert list(params) == ["name", "count", "kwargs"]
    assert not hasattr(act, "__wrapped__")


def test_salts_private_arguments_are_dropped():
    assert act(name="x", __pub_user="root") == {"name": "x", "count": None}


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: runnerkit.text_args("deploy request", version=1.1), "version was read as the float 1.1"),
        (lambda: runnerkit.required(app=None, env=""), "missing argument(s): app, env"),
        (lambda: runnerkit.flag("instant", "maybe"), "instant must be True or False"),
        (lambda: runnerkit.record_id("deploy", "x"), "a deploy id is a number"),
        (lambda: runnerkit.record_id("deploy", True), "a deploy id is a number"),
        (lambda: runnerkit.bounded_int("limit", 0, 1, 10), "limit must be between 1 and 10, got 0"),
        (lambda: runnerkit.bounded_int("limit", "many", 1, 10), "limit must be a number"),
        (lambda: runnerkit.whole_number("version", "3"), "version must be a whole number, got '3'"),
        (lambda: runnerkit.whole_number("version", True), "version must be a whole number"),
        (lambda: runnerkit.names("hosts", "web01,,web02"), "hosts must be a comma-separated list of names"),
        (lambda: runnerkit.names("hosts", {"web01": 1}), "hosts must be a comma-separated list of names"),
    ],
)
def test_argument_helpers_refuse_with_a_reason(call, message):
    with pytest.raises(runnerkit.Refused) as err:
        call()
    assert message in str(err.value) + " ".join(err.value.problems)


def test_argument_helpers_pass_good_values():
    runnerkit.text_args("deploy request", version="1.10", app=None)
    runnerkit.required(app="shop")
    assert runnerkit.flag("instant", "False") is False and runnerkit.flag("instant", True) is True
    assert runnerkit.record_id("deploy", "42") == 42
    assert runnerkit.bounded_int("limit", "5", 1, 10) == 5
    assert runnerkit.whole_number("version", None, 20) == 20 and runnerkit.whole_number("version", 3) == 3
    assert runnerkit.names("hosts", " web01, web02") == ["web01", "web02"]
    assert runnerkit.names("hosts", ["web01"]) == ["web01"] and runnerkit.names("hosts", "") is None


def test_epoch_times_are_shown_as_iso_8601_with_the_zone():
    shown = runnerkit.iso_times({"ends_at": 1796191186.5, "starts_at": None, "id": 7}, "starts_at", "ends_at")
    assert shown == {"ends_at": "2026-12-02T05:59:46+00:00", "starts_at": None, "id": 7}
    assert runnerkit.iso_times([{"next_due": 0}, "text"], "next_due") == [
        {"next_due": "1970-01-01T00:00:00+00:00"},
        "text",
    ]


def test_a_progress_step_reads_as_one_line():
    data = {"id": 7, "app": "shop", "hosts": [f"web{i:02}" for i in range(1, 8)], "number": 1, "error": None}
    line = runnerkit.progress_line("deploy 7 shop 1.4.2", "batch", data, ("id", "app"))
    assert line == "deploy 7 shop 1.4.2: batch hosts=[web01, web02, web03, web04, web05 ... (+2)], number=1"
    assert runnerkit.progress_line("confpush 3", "done", {"id": 3}, ("id",)) == "confpush 3: done"
