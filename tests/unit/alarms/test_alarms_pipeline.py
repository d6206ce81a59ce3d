"""The pipeline in memory: evaluation, grouping, storms, inhibition, silences, acks, absent hosts."""

from alarms_testkit import disk

from saltops.alarms.matchers import parse_matchers
from saltops.alarms.silence import FOREVER, Silence


def run(p, now, events=()):
    for tag, data in events:
        p.event(tag, data)
    batch = p.tick(now)
    walked = {}
    for alert in p.evaluator.alerts.values():
        key = (alert.state, alert.labels.get("severity", ""))
        walked[key] = walked.get(key, 0) + 1
    assert p.evaluator.counts() == walked  # the alarms gauge, counted as alerts change
    return batch


def notes(batch):
    return [n.payload for n in batch.notifications]


def test_threshold_for_and_resolution(make_pipeline, clock):
    p = make_pipeline()
    b = run(p, 1000, [disk("web01", 95)])
    assert [h["event"] for h in b.history] == ["pending"]
    # Below the `for` duration: still pending, nothing sent.
    clock.now = 1005
    b = run(p, 1005, [disk("web01", 96)])
    assert not b.notifications and not b.history
    clock.now = 1011
    b = run(p, 1011, [disk("web01", 97)])
    assert [h["event"] for h in b.history] == ["firing"]
    b = run(p, 1016)  # group_wait 5s
    (payload,) = notes(b)
    assert payload["status"] == "firing" and payload["receiver"] == "ops"
    alert = payload["alerts"][0]
    assert alert["labels"]["host"] == "web01" and alert["labels"]["idc"] == "bj-idc1"
    assert alert["annotations"]["summary"] == "disk / on web01 at 97%"
    assert payload["groupLabels"] == {"alertname": "DiskFull", "idc": "bj-idc1"}
    # The value drops: resolved at once, reported at the next group_interval.
    clock.now = 1020
    b = run(p, 1020, [disk("web01", 50)])
    assert [h["event"] for h in b.history] == ["resolved"]
    assert not run(p, 1040).notifications
    (payload,) = notes(run(p, 1046))
    assert payload["status"] == "resolved" and payload["alerts"][0]["status"] == "resolved"
    assert not p.evaluator.alerts and not p.dispatcher.groups


def test_pending_that_clears_never_notifies(make_pipeline, clock):
    p = make_pipeline()
    run(p, 1000, [disk("web01", 95)])
    clock.now = 1003
    b = run(p, 1003, [disk("web01", 10)])
    assert not p.evaluator.alerts
    assert not any(run(p, t).notifications for t in (1010, 1100, 2000))
    assert b.alerts  # the dropped pending alert is written back as resolved


def test_stale_alarm_resolves_when_host_stops_sending(make_pipeline, clock):
    p = make_pipeline()
    clock.now = 1000
    run(p, 1000, [("salt/beacon/web01/load/", {"id": "web01", "1m": 9.0})])
    assert [a.state for a in p.evaluator.alerts.values()] == ["firing"]
    run(p, 1005)
    b = run(p, 1061)  # resolve_after 60s without a sample
    assert [h["event"] for h in b.history] == ["resolved"]


def test_storm_is_grouped_into_bounded_notifications(make_pipeline, clock):
    """5,000 events from 500 hosts in two IDCs: one message per group per interval."""
    p = make_pipeline(labels=lambda h: {"idc": "bj-idc1" if int(h[3:]) % 2 else "sh-idc1"})
    sent = []
    for second in range(100):
        clock.now = 1000 + second
        events = [disk(f"web{(second * 50 + i) % 500:03d}", 95) for i in range(50)]
        sent += notes(run(p, clock.now, events))
    assert p.counters.accepted == 5000
    firing = [a for a in p.evaluator.alerts.values() if a.state == "firing"]
    assert len(firing) == 500
    # Two groups (one per IDC); first flush after group_wait, then at most one per group_interval.
    assert 2 <= len(sent) <= 2 * (1 + 100 // 30)
    announced = {a["fingerprint"] for n in sent for a in n["alerts"]}
    truncated = sum(n["truncatedAlerts"] for n in sent)
    assert len(announced) + truncated >= 500
    assert all(len(n["alerts"]) <= 50 for n in sent)
    # Nothing new while every host keeps reporting: no message until repeat_interval.
    for t in range(1100, 1400, 10):
        clock.now = t
        assert not notes(run(p, t, [disk(f"web{i:03d}", 95) for i in range(500)]))


def test_repeat_interval(make_pipeline, clock):
    p = make_pipeline()
    run(p, 1000, [("salt/beacon/web01/load/", {"id": "web01", "1m": 9.0})])
    assert len(run(p, 1005).notifications) == 1
    for t in range(1010, 4600, 30):
        clock.now = t
        assert not run(p, t, [("salt/beacon/web01/load/", {"id": "web01", "1m": 9.0})]).notifications
    clock.now = 4606
    b = run(p, 4606, [("salt/beacon/web01/load/", {"id": "web01", "1m": 9.0})])
    clock.now = 4636
    b2 = run(p, 4636, [("salt/beacon/web01/load/", {"id": "web01", "1m": 9.0})])
    assert len(b.notifications) + len(b2.notifications) == 1


def test_critical_route_groups_per_host_and_uses_both_channels(make_pipeline, clock):
    p = make_pipeline()
    run(p, 1000, [("salt/beacon/web01/service/nginx", {"id": "web01", "nginx": {"running": False},
                                                       "service_name": "nginx"}),
                  ("salt/beacon/web02/service/nginx", {"id": "web02", "nginx": {"running": False},
                                                       "service_name": "nginx"})])
    b = run(p, 1001)
    assert sorted(n.payload["groupLabels"]["host"] for n in b.notifications) == ["web01", "web02"]
    assert all(n.receiver == "oncall" and n.channels == ["hook", "sms"] for n in b.notifications)
    assert b.notifications[0].payload["alerts"][0]["labels"]["service"] == "nginx"


def test_host_silent_fires_and_inhibits_warnings_of_that_host(make_pipeline, clock):
    p = make_pipeline()
    run(p, 1000, [("salt/beacon/web01/load/", {"id": "web01", "1m": 9.0}),
                  ("salt/beacon/web02/load/", {"id": "web02", "1m": 9.0})])
    first = notes(run(p, 1005))
    assert len(first) == 1 and len(first[0]["alerts"]) == 2
    # web01 keeps reporting, web02 goes quiet: HostSilent for web02 after 120s.
    for t in range(1010, 1130, 10):
        clock.now = t
        run(p, t, [("salt/beacon/web01/load/", {"id": "web01", "1m": 9.0})])
    clock.now = 1125
    b = run(p, 1125, [("salt/beacon/web01/load/", {"id": "web01", "1m": 9.0})])
    silent = [h for h in b.history if h["rule"] == "HostSilent"]
    assert [h["event"] for h in silent] == ["pending", "firing"] and silent[0]["labels"]["host"] == "web02"
    sent = notes(run(p, 1127, [("salt/beacon/web01/load/", {"id": "web01", "1m": 9.0})]))
    assert [n["groupLabels"] for n in sent] == [{"alertname": "HostSilent", "host": "web02"}]
    # web02 reports again: the silent alarm resolves.
    clock.now = 1130
    b = run(p, 1130, [("salt/beacon/web02/load/", {"id": "web02", "1m": 9.0})])
    assert any(h["rule"] == "HostSilent" and h["event"] == "resolved" for h in b.history)


def test_inhibition_mutes_target_but_not_source(make_pipeline, clock):
    p = make_pipeline()
    run(p, 1000, [("salt/beacon/web02/load/", {"id": "web02", "1m": 9.0})])
    clock.now = 1200  # the load alarm went stale and web02 silent
    run(p, 1200)
    p2 = make_pipeline()
    # Fresh pipeline: the load warning and HostSilent both firing at once.
    p2.event("salt/beacon/web02/load/", {"id": "web02", "1m": 9.0})
    p2.tick(1000)
    clock.now = 1000
    p2.evaluator.hosts["web02"] = 800.0  # last sign of life long ago
    p2.evaluator.reschedule_hosts()  # deadlines follow samples; a hand-set time needs a reschedule
    p2.evaluator.alerts[next(iter(p2.evaluator.alerts))].last_seen = 1000
    b = p2.tick(1000.5)
    sent = notes(p2.tick(1010))
    names = {n["commonLabels"]["alertname"] for n in sent}
    assert names == {"HostSilent"}
    assert p2.counters.muted["inhibit"] >= 1
    assert b is not None


def test_silence_mutes_matching_alerts_until_it_ends(make_pipeline, clock):
    p = make_pipeline()
    p.silences.set([Silence("s1", "silence", parse_matchers(['host="web01"']), None, 0, 2000, "alice", "maint")])
    run(p, 1000, [("salt/beacon/web01/load/", {"id": "web01", "1m": 9.0}),
                  ("salt/beacon/web02/load/", {"id": "web02", "1m": 9.0})])
    (payload,) = notes(run(p, 1005))
    assert [a["labels"]["host"] for a in payload["alerts"]] == ["web02"]
    # While silenced nothing is news; after the silence ends (2000), web01 is.
    sent = []
    for t in range(1035, 2100, 30):
        clock.now = t
        got = notes(run(p, t, [("salt/beacon/web01/load/", {"id": "web01", "1m": 9.0}),
                               ("salt/beacon/web02/load/", {"id": "web02", "1m": 9.0})]))
        assert not got or t > 2000
        sent += got
    assert len(sent) == 1 and {a["labels"]["host"] for a in sent[0]["alerts"]} == {"web01", "web02"}


def test_ack_stops_repeats_but_resolution_is_still_sent(make_pipeline, clock):
    p = make_pipeline()
    run(p, 1000, [("salt/beacon/web01/load/", {"id": "web01", "1m": 9.0})])
    assert len(run(p, 1005).notifications) == 1
    fp = next(iter(p.evaluator.alerts))
    p.silences.set([Silence("a1", "ack", [], fp, 1010, FOREVER, "bob", "on it")])
    for t in range(1010, 4700, 30):
        clock.now = t
        assert not run(p, t, [("salt/beacon/web01/load/", {"id": "web01", "1m": 9.0})]).notifications
    clock.now = 4700
    b = run(p, 4700, [("salt/beacon/web01/load/", {"id": "web01", "1m": 1.0})])
    assert fp in b.ended_acks
    p.silences.set([])  # the write-behind ended the ack
    sent = notes(b)
    for t in (4710, 4740):
        sent += notes(run(p, t))
    assert [n["status"] for n in sent] == ["resolved"]


def test_forged_and_bad_events_are_counted_and_change_nothing(make_pipeline):
    p = make_pipeline()
    bad = [
        ("salt/beacon/web01/diskusage/", {"id": "db01", "diskusage": 99, "mount": "/"}),
        ("salt/beacon/web01/diskusage/", {"id": "web01", "diskusage": "lots", "mount": "/"}),
        ("salt/beacon/web01/diskusage/", {"id": "web01", "diskusage": 99}),
        ("salt/beacon/web01/diskusage/", {"id": "web01", "diskusage": 99, "mount": {"x": 1}}),
        ("salt/beacon/web01/diskusage/", None),
        ("salt/beacon/web01/service/", {"id": "web01"}),
        (None, None),
        ("salt/beacon/web01/diskusage/", {"id": "web01", "pad": "x" * 100000}),
    ]
    for tag, data in bad:
        assert p.event(tag, data) is False
    assert p.counters.rejected == {"id_mismatch": 1, "bad_value": 2, "missing_field": 2, "not_a_mapping": 1,
                                   "bad_tag": 1, "too_large": 1}
    assert not p.tick(1000).alerts and not p.evaluator.alerts


def test_alertmanager_alerts_share_the_routing(make_pipeline, clock):
    p = make_pipeline(labels=lambda h: {"idc": "sh-idc1", "role": "db"} if h == "db01" else {})
    payload = {"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "MysqlDown", "instance": "db01:9104", "severity": "critical"},
         "annotations": {"summary": "mysql down"}, "startsAt": "2024-05-01T10:00:00.123456789Z",
         "endsAt": "0001-01-01T00:00:00Z"}]}
    assert p.alertmanager(payload, now=1000) == 1
    b = p.tick(1000)
    assert [h["event"] for h in b.history] == ["pending", "firing"]
    sent = notes(p.tick(1002))
    assert sent[0]["receiver"] == "oncall"
    assert sent[0]["alerts"][0]["labels"]["idc"] == "sh-idc1"  # CMDB labels by instance host
    payload["alerts"][0]["status"] = "resolved"
    payload["alerts"][0]["endsAt"] = "2024-05-01T10:05:00Z"
    p.alertmanager(payload, now=1010)
    p.tick(1010)
    assert [n["status"] for n in notes(p.tick(1035))] == ["resolved"]


def test_alertmanager_payload_validation():
    import pytest

    from saltops.alarms.pipeline import validate_alertmanager

    for bad, msg in [
        ([], "JSON object"),
        ({"version": "3", "alerts": []}, "version"),
        ({"version": "4", "alerts": {}}, "list"),
        ({"version": "4", "alerts": [{"labels": {}}]}, "alertname"),
        ({"version": "4", "alerts": [{"labels": {"alertname": 5}}]}, "strings"),
        ({"version": "4", "alerts": [{"labels": {"alertname": "x"}, "status": "weird"}]}, "status"),
        ({"version": "4", "alerts": [{"labels": {"alertname": "x"}, "startsAt": "yesterday"}]}, "timestamp"),
    ]:
        with pytest.raises(ValueError, match=msg):
            validate_alertmanager(bad)


def test_rules_reload_keeps_alerts_and_regroups(make_pipeline, clock):
    from alarms_testkit import BASE_RULES, make_ruleset

    p = make_pipeline()
    run(p, 1000, [("salt/beacon/web01/load/", {"id": "web01", "1m": 9.0})])
    assert len(run(p, 1005).notifications) == 1
    p.reload(make_ruleset(BASE_RULES.replace("repeat_interval: 1h", "repeat_interval: 2h")))
    assert len(p.evaluator.alerts) == 1 and len(p.dispatcher.groups) == 1
    # Same group key, same nflog entry: no duplicate after a reload.
    assert not run(p, 1036, [("salt/beacon/web01/load/", {"id": "web01", "1m": 9.0})]).notifications
