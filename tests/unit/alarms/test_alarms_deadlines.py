"""What time does to alarms, now that a tick only looks at what is due: every deadline still fires
exactly when it should, however the alert or host got there (samples, restarts, reloads, Alertmanager).
Every tick also checks that the alarms gauge, counted as alerts change, equals a walk over them."""

from alarms_testkit import BASE_RULES, disk, make_ruleset

from saltops.alarms.model import FIRING, PENDING, Alert


def run(p, clock, now, events=()):
    clock.now = now
    for tag, data in events:
        p.event(tag, data)
    batch = p.tick(now)
    # The alarms gauge is counted as alerts change; it must always equal a walk over them.
    walked = {}
    for alert in p.evaluator.alerts.values():
        key = (alert.state, alert.labels.get("severity", ""))
        walked[key] = walked.get(key, 0) + 1
    assert p.evaluator.counts() == walked
    return batch


def events_of(batch, rule=None):
    """(rule, host, firing|resolved) transitions of a tick (an absent alarm is pending for no time at all)."""
    return [(h["rule"], h["labels"].get("host", h["labels"].get("instance")), h["event"])
            for h in batch.history if rule in (None, h["rule"]) and h["event"] != PENDING]


def load(host, value=9.0):
    return f"salt/beacon/{host}/load/", {"id": host, "1m": value}


def test_for_and_staleness_fire_on_the_tick_they_fall_due(make_pipeline, clock):
    p = make_pipeline()
    run(p, clock, 1000, [disk("web01", 95)])
    assert not events_of(run(p, clock, 1009.9))
    assert events_of(run(p, clock, 1010)) == [("DiskFull", "web01", "firing")]  # for: 10s, at the deadline
    run(p, clock, 1050, [disk("web01", 96)])  # a sample moves staleness to 1110
    assert not events_of(run(p, clock, 1100))
    assert not events_of(run(p, clock, 1110))  # resolve_after is "more than 60s"
    assert events_of(run(p, clock, 1110.01)) == [("DiskFull", "web01", "resolved")]


def test_many_alarms_with_different_deadlines(make_pipeline, clock):
    p = make_pipeline()
    for i in range(300):
        run(p, clock, 1000 + i / 10, [load(f"h{i:03d}")])  # fires at once (no `for`)
    assert sum(a.state == FIRING for a in p.evaluator.alerts.values()) == 300
    resolved = {}
    for k in range(320):
        now = 1060 + (k + 0.5) / 10
        for _rule, host, event in events_of(run(p, clock, now), "LoadHigh"):
            assert event == "resolved"
            resolved[host] = now
    # Each one goes stale on the first tick more than resolve_after (60s) after its sample: one per tick.
    assert list(resolved) == [f"h{i:03d}" for i in range(300)]
    assert all(60 < resolved[f"h{i:03d}"] - (1000 + i / 10) < 60.1 for i in range(300))


def test_absent_rules_with_different_periods_and_a_host_that_comes_back(make_pipeline, clock):
    text = BASE_RULES.replace(
        "  - name: HostSilent\n",
        "  - name: HostQuiet\n    event: absent\n    absent_for: 30s\n    severity: warning\n  - name: HostSilent\n",
    )
    p = make_pipeline(text)
    run(p, clock, 1000, [load("web01", 0.1)])
    assert not events_of(run(p, clock, 1030))
    assert events_of(run(p, clock, 1030.5), "HostQuiet") == [("HostQuiet", "web01", "firing")]
    assert not events_of(run(p, clock, 1100), "HostSilent")
    assert events_of(run(p, clock, 1120.5), "HostSilent") == [("HostSilent", "web01", "firing")]
    back = run(p, clock, 1200, [load("web01", 0.1)])
    assert sorted(events_of(back)) == [("HostQuiet", "web01", "resolved"), ("HostSilent", "web01", "resolved")]
    # Silent again: both rules fire again, counted from the new sample.
    assert not events_of(run(p, clock, 1230), "HostQuiet")
    assert events_of(run(p, clock, 1231), "HostQuiet") == [("HostQuiet", "web01", "firing")]
    assert events_of(run(p, clock, 1321), "HostSilent") == [("HostSilent", "web01", "firing")]


def test_quiet_cmdb_status_is_looked_at_again_every_tick(make_pipeline, clock):
    status = {"web01": "maintenance"}
    p = make_pipeline(labels=lambda h: {"idc": "bj-idc1", "status": status.get(h, "online")})
    run(p, clock, 1000, [load("web01", 0.1)])
    assert not events_of(run(p, clock, 1200), "HostSilent")
    assert not events_of(run(p, clock, 1300), "HostSilent")
    status["web01"] = "online"  # back from maintenance and still silent: absent at the next tick
    assert events_of(run(p, clock, 1301), "HostSilent") == [("HostSilent", "web01", "firing")]


def test_reload_that_adds_an_absent_rule_watches_known_hosts(make_pipeline, clock):
    without = BASE_RULES[: BASE_RULES.index("  - name: HostSilent")] + BASE_RULES[BASE_RULES.index("route:"):]
    p = make_pipeline(without)
    run(p, clock, 1000, [load("web01", 0.1)])
    assert not events_of(run(p, clock, 1200))
    p.reload(make_ruleset(BASE_RULES))
    assert events_of(run(p, clock, 1201), "HostSilent") == [("HostSilent", "web01", "firing")]


def test_restored_alarms_and_hosts_get_a_full_period_after_a_restart(make_pipeline, clock):
    p = make_pipeline()
    p.started = 5000.0
    p.evaluator.started = 5000.0
    stale = Alert("f" * 16, "LoadHigh", "beacon", {"alertname": "LoadHigh", "host": "web01"}, {}, FIRING, 1000.0,
                  resolve_after=60.0, active_since=1000.0, fired_at=1000.0)
    pending = Alert("e" * 16, "DiskFull", "beacon", {"alertname": "DiskFull", "host": "web02"}, {}, PENDING,
                    4990.0, for_=10.0, resolve_after=60.0, active_since=4990.0)
    p.restore([stale, pending], {"web01": 1000.0, "web02": 4990.0}, {}, 5000.0)
    assert events_of(run(p, clock, 5000)) == [("DiskFull", "web02", "firing")]  # its `for` had elapsed
    assert not events_of(run(p, clock, 5060))
    assert events_of(run(p, clock, 5060.5), "LoadHigh") == [("LoadHigh", "web01", "resolved")]
    assert not events_of(run(p, clock, 5120), "HostSilent")
    assert sorted(events_of(run(p, clock, 5120.5), "HostSilent")) == [
        ("HostSilent", "web01", "firing"), ("HostSilent", "web02", "firing")]


def test_alertmanager_ends_at_moved_earlier_is_honoured(make_pipeline, clock):
    p = make_pipeline()
    labels = {"alertname": "NodeDown", "instance": "db01:9100"}
    p.evaluator.external(labels, {}, "firing", 1000.0, 2000.0, 1000.0)
    run(p, clock, 1000)
    assert not events_of(run(p, clock, 1030))
    p.evaluator.external(labels, {}, "firing", 1000.0, 1040.0, 1031.0)  # Alertmanager shortened it
    assert not events_of(run(p, clock, 1040))
    assert events_of(run(p, clock, 1040.5)) == [("NodeDown", "db01", "resolved")]
