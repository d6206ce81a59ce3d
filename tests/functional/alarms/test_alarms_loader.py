"""The alarm runner, engine module and reactor SLS through Salt's own loaders (no daemons)."""

import datetime
import logging
import time

import pytest
import salt.config
import salt.loader
import yaml

from saltops.paths import tree
from tests.support.alarm_receivers import Receivers, channel_config
from tests.support.refusals import assert_refused

RULES = {
    "rules": [{"name": "DiskFull", "beacon": "diskusage", "field": "diskusage", "threshold": 90, "key": ["mount"],
               "remediate": {"function": "service.restart", "arg_label": "mount"}}],
    "route": {"receiver": "ops"},
    "receivers": {"ops": {"channels": ["hook"]}},
}


@pytest.fixture
def receivers():
    r = Receivers().start()
    yield r
    r.stop()


@pytest.fixture
def opts(tmp_path, receivers):
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump(RULES))
    o = salt.config.master_config(None)
    o.update({
        "cachedir": str(tmp_path / "cache"), "pki_dir": str(tmp_path / "pki"), "sock_dir": str(tmp_path / "sock"),
        "saltops": {"db_url": f"sqlite:///{tmp_path / 'saltops.db'}",
                    "alarms": {"rules_file": str(rules_file), "listen_port": 0},
                    "notify": {"channels": channel_config(receivers)}},
    })
    return o


@pytest.fixture
def runners(opts):
    return salt.loader.runner(opts, utils=salt.loader.utils(opts))


def test_runner_functions_are_loaded_with_docs(runners):
    for name in ("list", "history", "ack", "silence_add", "silence_list", "silence_expire", "test", "rules_check",
                 "notifications", "remediate"):
        fun = runners[f"alarm.{name}"]
        assert "CLI Example:" in fun.__doc__, name


def test_runner_round_trip(runners, receivers):
    assert runners["alarm.list"]() == []
    assert runners["alarm.rules_check"]()["rules"] == ["DiskFull"]
    sil = runners["alarm.silence_add"]('host="web01",alertname=~"Disk.*"', duration="30m", comment="maint")
    assert datetime.datetime.fromisoformat(sil["ends_at"]).timestamp() > time.time() + 1700
    assert sil["ends_at"].endswith("+00:00")
    assert [s["matchers"] for s in runners["alarm.silence_list"]()] == [['host="web01"', 'alertname=~"Disk.*"']]
    assert runners["alarm.silence_expire"](sil["id"])["expired"] is True
    assert runners["alarm.silence_list"]() == []
    assert runners["alarm.test"]("dingtalk", message="signed hello")["delivered"] is True
    assert receivers.of("dingtalk")
    notes = runners["alarm.notifications"]()
    assert notes["deliveries"][0]["channel"] == "dingtalk" and notes["deliveries"][0]["ok"] is True


def test_runner_errors_are_salt_errors(runners, tmp_path):

    assert_refused(runners["alarm.ack"]("nope"), "16 hex digits")
    assert_refused(runners["alarm.ack"]("0123456789abcdef"), "no alarm")
    assert_refused(runners["alarm.silence_add"]('host="x"', duration="1h"), "a comment")
    assert_refused(runners["alarm.silence_add"]('host="x"', duration="forever", comment="c"), "not a duration")
    assert_refused(runners["alarm.test"]("pager"), "no channel")
    assert_refused(runners["alarm.list"](state="burning"), "state must be")
    bad = tmp_path / "bad.yml"
    bad.write_text("rules: []\nroute: {receiver: nobody}\nreceivers: {ops: {channels: [nope]}}\n")
    err = assert_refused(runners["alarm.rules_check"](path=str(bad)), None)
    assert "'nobody' is not defined" in err["error"] and "'nope' is not defined" in err["error"]
    assert_refused(runners["alarm.remediate"]("0123456789abcdef"), "no alarm")


def test_test_channel_failure_is_reported_and_logged(runners, receivers):

    receivers.down = True
    assert_refused(runners["alarm.test"]("hook"), "HTTP 503")
    assert runners["alarm.notifications"]()["deliveries"][0]["ok"] is False


def test_engine_virtual_needs_a_rules_file_and_says_why_at_warning(opts, caplog, tmp_path):
    engines = salt.loader.engines(opts, {}, {}, {})
    assert "saltops_alarms.start" in engines
    db_url = opts["saltops"]["db_url"]
    cases = [
        ({"db_url": db_url, "alarms": {}}, "no alarm rules: set saltops:alarms:rules_file"),
        ({"db_url": db_url, "alarms": {"rules_file": str(tmp_path / "gone.yml")}}, "gone.yml) does not exist"),
        ({"db_url": db_url, "alarms": {"rules_file": "/x", "tick": -1}}, "saltops:alarms:tick"),
        ({"alarms": opts["saltops"]["alarms"]}, "saltops:db_url is not set"),
    ]
    for block, reason in cases:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert "saltops_alarms.start" not in salt.loader.engines(dict(opts, saltops=block), {}, {}, {})
        warned = [r.getMessage() for r in caplog.records
                  if r.levelno >= logging.WARNING and r.getMessage().startswith("saltops_alarms not started")]
        assert len(warned) == 1 and reason in warned[0], (reason, caplog.text)


def test_engine_refuses_a_weak_webhook_token_and_says_so_without_quoting_it(opts, caplog):
    weak = "tooshort"
    alarms = dict(opts["saltops"]["alarms"], webhook_token=weak)
    with caplog.at_level(logging.WARNING):
        engines = salt.loader.engines(dict(opts, saltops=dict(opts["saltops"], alarms=alarms)), {}, {}, {})
        assert "saltops_alarms.start" not in engines
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "saltops_alarms" in r.getMessage()]
    assert warned and "webhook_token" in warned[0]
    assert weak not in caplog.text


def _render(path, tag):
    import salt.template

    opts = salt.config.master_config(None)
    renderers = salt.loader.render(opts, {})
    data = salt.template.compile_template(str(path), renderers, "jinja|yaml", opts["renderer_blacklist"],
                                          opts["renderer_whitelist"], tag=tag, data={"id": "attacker"})
    return data


def test_reactor_sls_takes_only_a_well_formed_fingerprint():
    sls = tree("reactor") / "alarm_remediate.sls"
    ok = _render(sls, "saltops/alarm/0123456789abcdef/firing")
    assert ok == {"saltops-alarm-firing-remediate-0123456789abcdef": {"runner.alarm.remediate": [
        {"args": [{"fingerprint": "0123456789abcdef"}]}]}}
    for tag in ("saltops/alarm/0123456789abcdef/resolved", "saltops/alarm/x; rm -rf/firing",
                "saltops/alarm/0123456789abcdef/firing/extra"):
        assert not _render(sls, tag)
    res = _render(tree("reactor") / "alarm_resolved_log.sls", "saltops/alarm/0123456789abcdef/resolved")
    assert list(res) == ["saltops-alarm-resolved-log-0123456789abcdef"]


def test_notifications_lists_claimed_rows_and_refuses_unknown_states(runners):
    assert runners["alarm.notifications"](status="sending")["rows"] == []
    assert_refused(runners["alarm.notifications"](status="lost"), "pending, sending, sent, failed")
