"""The ``cmdb`` runner against a real master and minions: change events, refresh, drift.

Uses the session's shared master (CMDB seeded with the lab's demo hosts) and
its three minions; every test puts back what it changed.
"""

import json
import time

import pytest
import salt.config
import salt.wheel

from saltops.lab import demo
from saltops.store import outbox

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WEB, LB, DB = demo.WEB, demo.LB, demo.DB


def ok(result):
    assert result.returncode == 0, result.stderr or result.stdout
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
    # Every minion answers before a test relies on it (a fresh master may miss the first returns).
    up = wait_for(lambda: sorted(salt_run("manage.up", "timeout=5").data or []) == sorted(salt_minions))
    assert up, "the test minions do not answer the master"
    return salt_minions


def test_a_write_fires_the_changed_event_and_the_reactor_refreshes_the_pillar(
    minions, salt_master, salt_run, salt_call, event_listener, cmdb_store
):
    start = time.time()
    change = ok(salt_run("cmdb.update", WEB, "owner=web-team-2"))
    try:
        version = change["version"]
        assert "events_pending" not in change
        assert outbox.pending_count(cmdb_store) == 0
        # Events of earlier changes still in the outbox go out first (at-least-once): pick ours.
        found = wait_for(
            lambda: [
                e.data
                for e in event_listener.get_events(
                    [(salt_master.id, "saltops/cmdb/changed")], after_time=start
                )
                if e.data.get("version") == version
            ],
            timeout=30,
        )
        assert found, "saltops/cmdb/changed was not fired on the master bus"
        data = found[0]
        assert data["version"] == version and data["hostnames"] == [WEB] and data["balancers"] == [LB]

        # The reactor passes the version to cmdb.refresh, which publishes refresh_pillar to the
        # changed host and its balancer: the minion's pillar shows the new owner without a manual refresh.
        # (Earlier changes' events, fired by the same flush, refresh their own hosts first.)
        refresh_jobs = wait_for(
            lambda: [
                m.data
                for m in event_listener.get_events([(salt_master.id, "salt/job/*/new")], after_time=start)
                if m.data.get("fun") == "saltutil.refresh_pillar"
                and sorted(m.data.get("minions", [])) == [LB, WEB]
            ],
            timeout=30,
        )
        assert refresh_jobs, (
            "the reactor did not publish saltutil.refresh_pillar to the host and its balancer"
        )
        assert refresh_jobs[0]["tgt_type"] == "list" and sorted(refresh_jobs[0]["tgt"]) == [LB, WEB]
        seen = []

        def pillar_owner():
            seen.append(salt_call(WEB, "pillar.get", "cmdb:owner", "unmask=True").data)
            return seen[-1] == "web-team-2"

        assert wait_for(pillar_owner, timeout=60), (
            f"the minion's pillar did not pick up the change: {seen[-3:]}"
        )
    finally:
        ok(salt_run("cmdb.update", WEB, "owner=web-team"))


def test_refresh_waits_for_the_targets(minions, salt_run):
    change = ok(salt_run("cmdb.update", LB, "owner=ops-team-2"))
    try:
        result = ok(salt_run("cmdb.refresh", f"version={change['version']}", "wait=True", "timeout=30"))
        # An lb changing is not a backend change: only the lb itself is refreshed.
        assert result["targets"] == [LB] and result["balancers"] == []
        assert result["refreshed"] == [LB] and result["no_answer"] == []
    finally:
        ok(salt_run("cmdb.update", LB, "owner=ops-team"))
    web = ok(salt_run("cmdb.update", WEB, "status=maintenance"))
    try:
        result = ok(salt_run("cmdb.refresh", f"version={web['version']}", "wait=True", "timeout=30"))
        assert result["targets"] == [LB, WEB] and result["balancers"] == [LB]
        assert result["refreshed"] == [LB, WEB]
    finally:
        ok(salt_run("cmdb.update", WEB, "status=online"))


def test_refresh_rejects_what_is_not_a_version(minions, salt_run):
    bad = salt_run("cmdb.refresh", "version=web01.lab.saltops")
    assert "not a CMDB version number" in bad.stdout + bad.stderr
    future = salt_run("cmdb.refresh", "version=999999999")
    assert future.returncode != 0 and "does not exist yet" in future.stdout + future.stderr


def test_drift_against_the_live_minions(minions, salt_master, salt_run, salt_call):
    wheel = salt.wheel.WheelClient(salt.config.master_config(salt_master.config_file))
    ghost, rogue = f"ghost.{demo.DOMAIN}", f"rogue.{demo.DOMAIN}"
    osfinger = salt_call(DB, "grains.get", "osfinger").data
    ipv4 = salt_call(WEB, "grains.get", "ipv4").data
    # The demo CMDB matches the lab's minions: no address drift until something changes.
    fresh = ok(salt_run("cmdb.drift", "timeout=10"))
    assert fresh["ip_mismatch"] == [] and fresh["not_responding"] == [], json.dumps(fresh)
    ok(
        salt_run(
            "cmdb.add",
            ghost,
            "ip=10.20.0.99",
            "roles=base",
            "platform=Debian-12",
            "machine_type=vm",
            "idc=lab",
            "env=dev",
            "owner=ops-team",
        )
    )
    real_ip = next(ip for ip in ipv4 if ip != "127.0.0.1") if len(ipv4) > 1 else ipv4[0]
    ok(salt_run("cmdb.update", WEB, f"ip={real_ip}", f"platform={osfinger}"))
    ok(salt_run("cmdb.update", DB, "ip=10.20.0.21", "platform=Windows-2019"))
    wheel.cmd("key.gen_accept", [ghost])
    wheel.cmd("key.gen_accept", [rogue])
    try:
        report = ok(salt_run("cmdb.drift", "timeout=10"))
        assert report["unknown_minions"] == [rogue]
        assert report["not_responding"] == [ghost], json.dumps(report)
        assert report["missing_key"] == []  # web02 (maintenance) and cache01 (offline) need no key
        mismatched = {m["hostname"]: m for m in report["ip_mismatch"]}
        assert WEB not in mismatched  # its CMDB ip is now one of its real addresses
        assert mismatched[DB]["cmdb"] == "10.20.0.21" and "127.0.0.1" in mismatched[DB]["grains"]
        assert {"hostname": DB, "cmdb": "Windows-2019", "grains": osfinger} in report["os_mismatch"]
        assert WEB not in [m["hostname"] for m in report["os_mismatch"]]
        assert report["bad_answers"] == []
        assert report["summary"]["answered"] == 3 and report["clean"] is False

        # Decommissioning the ghost turns "not responding" into "decommissioned with a key".
        ok(salt_run("cmdb.remove", ghost))
        report = ok(salt_run("cmdb.drift", "timeout=5"))
        assert report["not_responding"] == [] and report["decommissioned_with_key"] == [ghost]
    finally:
        for minion in (ghost, rogue):
            wheel.cmd("key.delete", [minion])
        salt_run("cmdb.remove", ghost, "purge=True")
        for rec in demo.hosts():
            if rec["hostname"] in (WEB, DB):
                salt_run("cmdb.update", rec["hostname"], f"ip={rec['ip']}", f"platform={rec['platform']}")


def test_cli_exit_codes_and_messages(minions, salt_run, cmdb_store):
    missing = salt_run("cmdb.show", "nope.lab.saltops")
    assert missing.returncode != 0 and "not in the CMDB" in missing.stdout + missing.stderr
    bad = salt_run("cmdb.update", WEB, "status=broken")
    # Bad input: a clear message and a non-zero exit, for shell scripts.
    assert bad.returncode == 1 and "status 'broken' is not one of" in bad.stdout + bad.stderr
    targets = salt_run("cmdb.targets", "role=web", "sep=,", "--out=txt")
    assert targets.returncode == 0
    # web02 is in maintenance: still a target (only decommissioned hosts are left out).
    assert targets.stdout.strip() == f"{WEB},web02.{demo.DOMAIN}"
