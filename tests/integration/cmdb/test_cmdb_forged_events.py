"""Forged CMDB events from a real minion: the reactor treats them as hints and acts only on the store.

A minion can put any tag and data on the master bus with the batched form of
``event.send`` (``preload='{"events": [...]}'``): the master fires each event
as written, with no ``cmd: _minion_event`` for the reactor SLS to refuse.  So
``cmdb.refresh`` acts once per CMDB version a write really queued, and
``cmdb.refresh_after_outage`` once per outage this master recorded as ended.
"""

import json
import time

import pytest
import salt.config

from saltops import config as saltops_config
from saltops.lab import demo
from saltops.pillar.outage import OutageMarker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WEB, LB = demo.WEB, demo.LB
CHANGED, RECOVERED = "saltops/cmdb/changed", "saltops/cmdb/recovered"


def ok(result):
    assert result.returncode == 0, (result.stdout or "")[-3000:] + (result.stderr or "")[-2000:]
    return result.data


def wait_for(check, timeout=60, step=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(step)
    return last


@pytest.fixture
def minions(salt_minions, salt_run):
    up = wait_for(lambda: sorted(salt_run("manage.up", "timeout=5").data or []) == sorted(salt_minions))
    assert up, "the test minions do not answer the master"
    return salt_minions


def forge(salt_call, minion, events):
    """Fire ``events`` (``[(tag, data)]``) from ``minion`` in the batched form, as an attacker would."""
    preload = json.dumps({"events": [{"tag": tag, "data": data} for tag, data in events]})
    ok(salt_call(minion, "event.send", "saltops/forged", f"preload={preload}"))


def runner_returns(event_listener, master, fun, after):
    return [
        event.data.get("return")
        for event in event_listener.get_events([(master.id, "salt/run/*/ret")], after_time=after)
        if event.data.get("fun") == f"runner.{fun}" and isinstance(event.data.get("return"), dict)
    ]


def runs_seen(event_listener, master, after):
    """What the master's runners began and returned since ``after`` (for a failure's message)."""
    return [
        (event.tag, event.data.get("fun"), str(event.data.get("return"))[:300])
        for event in event_listener.get_events([(master.id, "salt/run/*")], after_time=after)
    ]


def published(event_listener, master, fun, after):
    """The jobs ``fun`` published to minions since ``after`` (their ``salt/job/*/new`` data)."""
    return [
        event.data
        for event in event_listener.get_events([(master.id, "salt/job/*/new")], after_time=after)
        if event.data.get("fun") == fun
    ]


def test_a_forged_changed_event_refreshes_nothing_and_a_real_change_is_refreshed_once(
    minions, salt_master, salt_run, salt_call, event_listener
):
    start = time.time()
    change = ok(salt_run("cmdb.update", WEB, "owner=web-team-forged"))
    try:
        version = change["version"]
        first = wait_for(
            lambda: [r for r in runner_returns(event_listener, salt_master, "cmdb.refresh", start)
                     if r.get("version") == version],
            timeout=60,
        )
        assert first, f"the reactor did not run cmdb.refresh for the real change {version}"
        assert "skipped" not in first[0] and first[0]["targets"] == [LB, WEB]

        # Replay the real version, then a version nobody wrote yet, from a minion (one at a time:
        # Salt may drop an event of two runner reactions that fire at the same moment).
        forged_at = time.time()
        answers = {}
        for forged in (version, version + 1000):
            sent_at = time.time()
            forge(salt_call, WEB, [(CHANGED, {"version": forged})])
            seen = wait_for(
                lambda at=sent_at: [
                    e.data for e in event_listener.get_events([(salt_master.id, CHANGED)], after_time=at)
                ],
                timeout=30,
            )
            # The master fired it as written: no "cmd: _minion_event" for the SLS guard to see.
            assert {"version": forged} in seen and all("cmd" not in data for data in seen)
            ran = wait_for(lambda at=sent_at: runner_returns(event_listener, salt_master, "cmdb.refresh", at))
            assert ran, f"the reactor did not run cmdb.refresh for the forged version {forged}"
            answers[forged] = ran[0]
        assert "already done" in answers[version]["skipped"]
        assert "does not exist yet" in answers[version + 1000]["skipped"]
        assert all(r["targets"] == [] and r["jid"] is None for r in answers.values())
        # The runner publishes before it returns: nothing was published for the forged events.
        assert published(event_listener, salt_master, "saltutil.refresh_pillar", forged_at) == []
        assert published(event_listener, salt_master, "state.apply", forged_at) == []
    finally:
        ok(salt_run("cmdb.update", WEB, "owner=web-team"))


def test_a_forged_recovered_event_refreshes_nothing_and_a_recorded_recovery_refreshes_once(
    minions, salt_master, salt_call, event_listener
):
    conf = saltops_config.load(salt.config.master_config(salt_master.config_file))
    marker = OutageMarker(conf["cmdb"]["snapshot_file"])
    assert not marker.exists(), "the test master's CMDB is in an outage"
    marker.claim_recovery()  # no note left over from an earlier test

    forged_at = time.time()
    forge(salt_call, WEB, [(RECOVERED, {"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:01:00Z"})])
    answer = wait_for(
        lambda: runner_returns(event_listener, salt_master, "cmdb.refresh_after_outage", forged_at), timeout=60
    )
    assert answer, "the reactor did not run cmdb.refresh_after_outage for the forged event"
    assert answer[0]["jid"] is None and "no CMDB outage ended" in answer[0]["skipped"]
    assert published(event_listener, salt_master, "saltutil.refresh_pillar", forged_at) == []

    # An outage this master recorded, then its end (as the pillar's workers record them).
    now = time.time()
    marker.failed(now - 60, "test outage", 300, None)
    assert marker.recovered(now, None) == now - 60
    real_at = time.time()
    # The real event, then its replay. One at a time: two runner reactions at the same moment
    # share the reactor's event publisher, and Salt 3008 drops one of their events ("Publisher
    # send failed ... This event loop is already running"), though both runs happen.
    forge(salt_call, WEB, [(RECOVERED, {})])
    acted = wait_for(
        lambda: runner_returns(event_listener, salt_master, "cmdb.refresh_after_outage", real_at)
    )
    assert acted, f"the reactor did not run the refresh: {runs_seen(event_listener, salt_master, real_at)}"
    assert len(acted) == 1 and acted[0]["jid"] and acted[0]["outage"]["until"] is not None, acted
    replay_at = time.time()
    forge(salt_call, WEB, [(RECOVERED, {})])
    replayed = wait_for(
        lambda: runner_returns(event_listener, salt_master, "cmdb.refresh_after_outage", replay_at)
    )
    seen = runs_seen(event_listener, salt_master, replay_at)
    assert replayed, f"the reactor did not run the replay: {seen}"
    assert replayed[0]["jid"] is None and replayed[0]["skipped"].startswith("no CMDB outage ended")
    jobs = wait_for(
        lambda: published(event_listener, salt_master, "saltutil.refresh_pillar", real_at), timeout=30
    )
    assert len(jobs) == 1 and jobs[0]["tgt"] == "*" and jobs[0]["jid"] == acted[0]["jid"]
