"""The service loop with a real store and real receivers: storm, restart mid-storm, channel outage,
the HTTP endpoint (metrics, Alertmanager webhook) and the metrics hooks."""

import json
import threading
import time
import urllib.request

import pytest
import sqlalchemy as sa
import yaml

from saltops import metrics
from saltops.alarms.service import AlarmService
from saltops.notify import queue as notify_queue
from saltops.store.schema import event_outbox
from tests.support.alarm_receivers import Receivers, channel_config, free_port

RULES = {
    "rules": [
        {"name": "DiskFull", "beacon": "diskusage", "field": "diskusage", "threshold": 90, "key": ["mount"],
         "fire_event": True, "annotations": {"summary": "disk {mount} on {host} at {value}%"}},
    ],
    "route": {"receiver": "ops", "group_by": ["alertname"], "group_wait": "0.3s", "group_interval": "1s",
              "repeat_interval": "1h"},
    "receivers": {"ops": {"channels": ["hook", "wecom"], "max_alerts": 0}},
}


@pytest.fixture
def receivers():
    r = Receivers().start()
    yield r
    r.stop()


@pytest.fixture
def make_service(store, receivers, tmp_path):
    made = []

    def make(port=0, token=None, rules=RULES):
        path = tmp_path / "rules.yml"
        path.write_text(yaml.safe_dump(rules))
        conf = {"alarms": {"rules_file": str(path), "listen_port": port, "webhook_token": token, "tick": 0.05,
                           "cmdb_labels": False},
                "notify": {"channels": channel_config(receivers), "retry": {"backoff": "0.2s", "max_backoff": "1s"}}}
        fired = []
        svc = AlarmService(conf, store, fire=lambda tag, data: fired.append(tag))
        svc.fired = fired
        svc.start()
        thread = threading.Thread(target=svc.run, daemon=True)
        thread.start()
        svc.thread = thread
        made.append(svc)
        return svc

    yield make
    for svc in made:
        if not svc.stopping.is_set():
            stop(svc)


def stop(svc):
    svc.stopping.set()
    svc.thread.join(10)
    svc.stop()


def storm(svc, hosts, start=0):
    for i in range(start, hosts):
        svc.submit_event(f"salt/beacon/h{i:04d}/diskusage/", {"id": f"h{i:04d}", "diskusage": 95.0, "mount": "/"})


def announced(receivers):
    return {a["labels"]["host"] for g in receivers.of("hook") for a in g["body"]["alerts"]}


def wait_for(cond, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_storm_gives_few_notifications_and_forgeries_are_counted(make_service, receivers, store):
    svc = make_service()
    storm(svc, 3000)
    for i in range(200):
        svc.submit_event(f"salt/beacon/h{i:04d}/diskusage/", {"id": "someone-else", "diskusage": 99, "mount": "/"})
        svc.submit_event(f"salt/beacon/h{i:04d}/diskusage/", ["garbage"])
        svc.submit_event(f"salt/beacon/h{i:04d}/diskusage/", {"id": f"h{i:04d}", "diskusage": "x", "mount": "/"})
    assert wait_for(lambda: len(announced(receivers)) == 3000)
    time.sleep(1.5)
    hooks = receivers.of("hook")
    assert len(hooks) <= 4, len(hooks)
    assert len(receivers.of("wecom")) == len(hooks)
    c = svc.pipeline.counters
    assert c.accepted == 3000 and c.rejected == {"id_mismatch": 200, "not_a_mapping": 200, "bad_value": 200}
    assert wait_for(lambda: len(svc.fired) == 3000)  # saltops/alarm/<fp>/firing for the reactor
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(event_outbox)
                            .where(event_outbox.c.sent_at.is_(None))).scalar() == 0


def test_restart_mid_storm_loses_nothing_and_sends_no_duplicate(make_service, receivers, store):
    svc = make_service()
    storm(svc, 1000)
    assert wait_for(lambda: len(announced(receivers)) == 1000)
    stop(svc)
    first = len(receivers.of("hook"))
    svc2 = make_service()
    assert len(svc2.pipeline.evaluator.alerts) == 1000
    storm(svc2, 1000)  # the same alarms again: nothing is news after the restart
    time.sleep(2.5)
    assert len(receivers.of("hook")) == first
    storm(svc2, 1500, start=1000)  # 500 new ones: news, sent with the whole group as Alertmanager does
    assert wait_for(lambda: len(announced(receivers)) == 1500)
    time.sleep(1.5)
    later = receivers.of("hook")[first:]
    assert len(later) == 1 and len(later[0]["body"]["alerts"]) == 1500


def test_channel_down_then_back(make_service, receivers, store):
    receivers.down = True
    svc = make_service()
    storm(svc, 10)
    assert wait_for(lambda: svc.deliverer.pending() == 0 and _attempts(store) >= 4)
    assert not receivers.of("hook")
    receivers.down = False
    assert receivers.wait("hook", 1, timeout=15)
    assert wait_for(lambda: outbox_counts(store) == {"sent": 2})
    assert len(receivers.of("hook")) == 1 and len(receivers.of("wecom")) == 1


def _attempts(store):
    with store.connect() as conn:
        return conn.execute(sa.select(sa.func.sum(notify_queue.outbox.c.attempts))).scalar() or 0


def outbox_counts(store):
    with store.connect() as conn:
        return notify_queue.counts(conn)


def _post(url, body, token=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if not isinstance(body, bytes) else body,
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def value(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not in the exposition")


TOKEN = "am-5e0b7d2c9f31a846"


def test_http_endpoint_metrics_and_alertmanager_webhook(make_service, receivers):
    port = free_port()
    svc = make_service(port=port, token=TOKEN)
    base = f"http://127.0.0.1:{port}"
    am = {"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db01:9100", "severity": "warning"},
         "annotations": {"summary": "from prometheus"}, "startsAt": "2024-05-01T10:00:00Z",
         "endsAt": "0001-01-01T00:00:00Z"}]}
    assert _post(base + "/api/v1/alertmanager", am)[0] == 401
    assert _post(base + "/api/v1/alertmanager", am, token="wrong")[0] == 401
    code, body = _post(base + "/api/v1/alertmanager", {"version": "4", "alerts": [{}]}, token=TOKEN)
    assert code == 400 and "alertname" in body["error"]
    assert _post(base + "/api/v1/alertmanager", b"{not json", token=TOKEN)[0] == 400
    assert _post(base + "/api/v1/alertmanager", am, token=TOKEN) == (200, {"accepted": 1})
    (got,) = receivers.wait("hook", 1)
    assert got["body"]["alerts"][0]["annotations"]["summary"] == "from prometheus"
    storm(svc, 3)
    svc.submit_event("salt/beacon/h0001/diskusage/", {"id": "h0002", "diskusage": 99, "mount": "/"})
    assert wait_for(lambda: svc.pipeline.counters.rejected.get("id_mismatch") == 1)
    assert receivers.wait("hook", 2)
    time.sleep(0.5)
    text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
    assert 'saltops_alarm_events_rejected_total{reason="id_mismatch"} 1.0' in text
    assert "saltops_alarm_events_accepted_total 4.0" in text
    assert 'saltops_alarms{severity="warning",state="firing"} 4.0' in text
    assert 'saltops_notifications_total{channel="hook",result="ok"}' in text
    # Process-wide counters: they only grow, by at least what this test did.
    assert value(text, 'saltops_alarm_webhook_rejected_total{reason="unauthorized"}') >= 2
    assert value(text, 'saltops_alarm_webhook_rejected_total{reason="invalid"}') >= 2
    assert "saltops_cmdb_hosts" in text or "saltops_cmdb_version" in text
    assert urllib.request.urlopen(base + "/-/healthy", timeout=5).read() == b"ok\n"


def test_invalid_rules_reload_keeps_the_running_rules(make_service, receivers, tmp_path):
    svc = make_service()
    path = tmp_path / "rules.yml"
    path.write_text("rules: [ {name: 5} ]\n")
    assert wait_for(lambda: svc._rules_mtime is not None and svc.figures.rules_errors._value.get() >= 1, 5)
    storm(svc, 2)
    assert receivers.wait("hook", 1)
    good = dict(RULES)
    good["rules"] = [dict(RULES["rules"][0], threshold=99)]
    path.write_text(yaml.safe_dump(good))
    time.sleep(0.05)
    assert wait_for(lambda: svc.ruleset.rules[0].threshold == 99, 5)


def test_metrics_hooks_for_other_parts():
    from prometheus_client.core import GaugeMetricFamily

    metrics.register("deploy_test", lambda: [GaugeMetricFamily("saltops_deploys_running", "Deploys running", value=2)])
    metrics.register("broken_test", lambda: 1 / 0)
    try:
        _ctype, body = metrics.exposition()
        text = body.decode()
        assert "saltops_deploys_running 2.0" in text
        assert 'saltops_metrics_collector_errors_total{collector="broken_test"}' in text
        c = metrics.counter("saltops_test_things_total", "things", ["kind"])
        assert metrics.counter("saltops_test_things_total", "things", ["kind"]) is c
        with pytest.raises(ValueError):
            metrics.gauge("saltops_test_things_total", "things")
    finally:
        metrics.unregister("deploy_test")
        metrics.unregister("broken_test")


def test_service_refuses_bad_settings(store, tmp_path):
    from saltops.errors import ValidationError

    with pytest.raises(ValidationError, match="rules_file"):
        AlarmService({"alarms": {}}, store)
    path = tmp_path / "r.yml"
    path.write_text(yaml.safe_dump(RULES))
    with pytest.raises(ValidationError) as err:
        AlarmService({"alarms": {"rules_file": str(path), "listen_port": -1, "colour": 1},
                      "notify": {"channels": {"hook": {"type": "nope"}}}}, store)
    text = str(err.value)
    assert "listen_port" in text and "colour" in text and "channels.hook.type" in text
    with pytest.raises(ValidationError, match="'hook' is not defined"):
        AlarmService({"alarms": {"rules_file": str(path)}, "notify": {"channels": {}}}, store)


def test_fire_backs_off_warns_once_per_outage_and_marks_rows_sent(store, tmp_path, caplog):
    from saltops.alarms.service import Backoff
    from saltops.bridge.bus import BusUnavailable
    from saltops.store.outbox import enqueue

    (tmp_path / "rules.yml").write_text(yaml.safe_dump(RULES))
    bus_up = threading.Event()
    fired = []

    def fire(tag, data):
        if not bus_up.is_set():
            raise BusUnavailable("the master event bus is not reachable")
        fired.append((tag, data))

    svc = AlarmService({"alarms": {"rules_file": str(tmp_path / "rules.yml"), "listen_port": 0,
                                   "cmdb_labels": False},
                        "notify": {"channels": channel_config(Receivers())}}, store, fire=fire)
    with store.begin() as conn:
        for n in range(3):
            enqueue(conn, f"saltops/alarm/{n:016x}/firing", {"fingerprint": f"{n:016x}"})
    outage = Backoff(0.5, 30)
    caplog.set_level("DEBUG", logger="saltops.alarms.service")
    for _ in range(12):
        assert svc.fire_pending(outage) is None
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "cannot be fired" in warnings[0].getMessage()
    assert outage.failures == 12 and outage.delay == 30  # 0.5, 1, 2 ... capped
    bus_up.set()
    assert svc.fire_pending(outage) == 3
    assert outage.failures == 0 and "fired again after 12 failed attempts" in caplog.records[-1].getMessage()
    assert [tag for tag, _data in fired] == [f"saltops/alarm/{n:016x}/firing" for n in range(3)]
    assert fired[0][1] == {"fingerprint": "0" * 16}
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(event_outbox)
                            .where(event_outbox.c.sent_at.is_(None))).scalar() == 0
    assert svc.fire_pending(outage) == 0  # nothing is fired twice


def test_backoff_doubles_up_to_its_bound():
    from saltops.alarms.service import Backoff

    outage = Backoff(0.5, 30)
    delays = []
    for _ in range(9):
        outage.failed()
        delays.append(outage.delay)
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    outage.reset()
    assert outage.delay == 0.0


def test_master_bus_takes_tag_then_data_and_raises_when_the_bus_is_not_there(tmp_path):
    import salt.config

    from saltops.bridge.bus import BusUnavailable, MasterBus

    opts = salt.config.master_config(None)
    opts.update({"sock_dir": str(tmp_path / "sock"), "cachedir": str(tmp_path / "cache")})
    (tmp_path / "sock").mkdir()
    bus = MasterBus(opts)
    with pytest.raises(TypeError, match=r"an event tag is a string \(fire\(tag, data\)\), not dict"):
        bus({"fingerprint": "x"}, "saltops/alarm/x/firing")  # Salt's own order is refused
    with pytest.raises(BusUnavailable, match="not reachable"):
        bus("saltops/alarm/0123456789abcdef/firing", {"fingerprint": "0123456789abcdef"})
    bus.close()
