"""The saltops:notify settings: defaults, durations, and every problem named at once."""

import pytest

from saltops.alarms import settings as alarm_settings
from saltops.errors import ValidationError
from saltops.notify import settings


def test_defaults_with_durations_in_seconds():
    notify, problems = settings.check(None)
    assert problems == []
    assert notify["retry"] == {"max_attempts": 10, "backoff": 5.0, "max_backoff": 600.0}
    assert notify["claim_timeout"] == 120.0 and notify["channels"] == {}


def test_every_problem_is_listed():
    _notify, problems = settings.check({
        "retry": {"max_attempts": 0, "backoff": "soon"}, "workers": True, "timeout": -1, "claim_timeout": "x",
        "colour": "red", "channels": {"a": {"type": "pager"}}})
    text = "\n".join(problems)
    for needle in ("unknown keys ['colour']", "retry:max_attempts", "retry:backoff", "workers", "timeout",
                   "claim_timeout", "channels.a.type"):
        assert needle in text, needle


def test_a_claim_must_outlast_the_slowest_send():
    hook = {"type": "webhook", "url": "http://127.0.0.1/hook", "timeout": 30}
    _notify, problems = settings.check({"claim_timeout": "1m", "channels": {"hook": hook}})
    assert problems == ["saltops:notify:claim_timeout: 60s is shorter than 6 x the longest channel timeout "
                        "(30s); make it at least 180s"]
    assert settings.check({"claim_timeout": "3m", "channels": {"hook": hook}})[1] == []


def test_the_engine_reports_alarm_and_notify_problems_together():
    with pytest.raises(ValidationError) as err:
        alarm_settings.load({"alarms": {"tick": 0}, "notify": {"workers": 0}})
    assert "saltops:alarms:tick" in str(err.value) and "saltops:notify:workers" in str(err.value)
