"""The balancer follows the CMDB: change -> event -> reactor -> cmdb.refresh -> state.apply lb -> haproxy.

Nothing but the CMDB is touched by the tests: each change is a ``salt-run
cmdb.update``/``cmdb.add``/``cmdb.remove`` on the master; the
``saltops/cmdb/changed`` event, the reactor, the pillar refresh, the
``state.apply lb`` on the balancer and haproxy's checked reload all happen on
their own.  What a test asserts is what a user would see: which web host answers
a request made through haproxy (real HTTP on 127.0.20.2:18581), and the runner's
and the state run's returns on the event bus.  See conftest.py for the setup.
"""

import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.integration.hecd.conftest import (
    FRONTEND_PORT,
    HAPROXY_CFG,
    LB,
    LB2,
    LB3,
    LB_IP,
    SERVER_NAME,
    SHOP,
    WEB1,
    WEB2,
    WEB3,
    WEB_IPS,
    wait_for,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0, reason="applying the lb state for real needs root"
    ),
    pytest.mark.skipif(
        shutil.which("apt-get") is None, reason="no apt-get: the lb formula is applied on Debian"
    ),
]

# A bound for each step of the loop; on this 2-core machine it takes a few seconds.
LOOP_TIMEOUT = 90
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def through_lb(count=8):
    """The web host that served each of ``count`` requests made through haproxy (None: no answer)."""
    out = []
    for _ in range(count):
        request = urllib.request.Request(f"http://{LB_IP}:{FRONTEND_PORT}/", headers={"Host": SERVER_NAME})
        try:
            with _OPENER.open(request, timeout=3) as response:
                out.append(json.loads(response.read())["host"])
        except (OSError, ValueError, urllib.error.URLError):
            out.append(None)
    return out


def serving(expected):
    """Wait until requests through haproxy are answered by exactly the hosts ``expected``."""
    seen = []

    def check():
        answers = through_lb(4 * max(1, len(expected)))
        seen.append(answers)
        return None not in answers and set(answers) == set(expected)

    assert wait_for(check, timeout=LOOP_TIMEOUT), f"wanted {sorted(expected)}, the last answers: {seen[-3:]}"


def digest():
    return hashlib.sha256(HAPROXY_CFG.read_bytes()).hexdigest()


def ok(result):
    assert result.returncode == 0, (result.stdout or "")[-3000:] + (result.stderr or "")[-2000:]
    return result.data


def refresh_return(event_listener, master, version, after):
    """The return of the reactor's ``cmdb.refresh`` for ``version``, from the master bus."""

    def find():
        for event in event_listener.get_events([(master.id, "salt/run/*/ret")], after_time=after):
            ret = event.data.get("return")
            if (
                event.data.get("fun") == "runner.cmdb.refresh"
                and isinstance(ret, dict)
                and ret.get("version") == version
            ):
                return ret
        return None

    found = wait_for(find, timeout=LOOP_TIMEOUT)
    assert found, f"no cmdb.refresh ran for CMDB version {version} (is the reactor configured?)"
    return found


def apply_return(event_listener, master, jid, after):
    """The balancer's ``state.apply`` return for job ``jid``."""

    def find():
        for event in event_listener.get_events([(master.id, f"salt/job/{jid}/ret/{LB}")], after_time=after):
            return event.data
        return None

    found = wait_for(find, timeout=LOOP_TIMEOUT)
    assert found, f"lb01 did not return the state.apply job {jid}"
    return found


def by_id(state_return):
    return {value["__id__"]: value for value in state_return["return"].values()}


def changed_through_the_loop(hecd, event_listener, *runner_args):
    """Run a CMDB write; return (the write's result, the reactor's refresh, the balancer's state run)."""
    master = hecd["master"]
    start = time.time()
    change = ok(hecd["run"].run(*runner_args))
    assert "events_pending" not in change, change
    refresh = refresh_return(event_listener, master, change["version"], start)
    assert refresh["applied"] == {LB: "lb"}, refresh
    assert LB in refresh["refreshed"], refresh
    job = apply_return(event_listener, master, refresh["apply_jids"]["lb"], start)
    return change, refresh, job


def test_the_balancer_serves_every_online_web_host(hecd):
    serving({WEB1, WEB2})
    text = HAPROXY_CFG.read_text()
    for host in (WEB1, WEB2):
        assert f"server {host} {WEB_IPS[host]}:" in text
    assert (
        subprocess.run(["/usr/sbin/haproxy", "-c", "-q", "-f", str(HAPROXY_CFG)], check=False).returncode == 0
    )
    print(f"first state.apply lb: {hecd['first_apply_seconds']:.1f}s")


def test_a_host_in_maintenance_no_longer_gets_requests(hecd, event_listener):
    started = time.monotonic()
    try:
        change, refresh, job = changed_through_the_loop(
            hecd, event_listener, "cmdb.update", WEB2, "status=maintenance"
        )
        # Targets come from the audit log and the CMDB: the changed host and the balancers of its env.
        assert refresh["targets"] == [LB, LB2, LB3, WEB2] and refresh["balancers"] == [LB, LB2, LB3]
        assert refresh["no_answer"] == [LB2, LB3, WEB2]  # CMDB hosts without a minion
        # Only the balancer that runs and confirmed its new pillar gets the state.
        assert refresh["applied"] == {LB: "lb"} and refresh["apply_skipped"] == {
            LB2: "its pillar refresh was not confirmed: state not applied",
            LB3: "status offline in the CMDB",
        }
        states = by_id(job)
        assert job["success"] is True and job["retcode"] == 0, states
        assert states["lb-config-file-file-managed"]["changes"], "the config was not rewritten"
        assert states["lb-service-running-service-running"]["result"] is True
        serving({WEB1})
        print(f"maintenance -> out of the balancer: {time.monotonic() - started:.1f}s")
        text = HAPROXY_CFG.read_text()
        assert f"server {WEB2} " not in text and f"CMDB at version {change['version']}" in text
        # A longer look: not one request reaches the host in maintenance.
        assert WEB2 not in through_lb(20)
    finally:
        started = time.monotonic()
        changed_through_the_loop(hecd, event_listener, "cmdb.update", WEB2, "status=online")
    # Back online, back in the balancer.
    serving({WEB1, WEB2})
    print(f"online -> back in the balancer: {time.monotonic() - started:.1f}s")


def test_a_new_web_host_joins_and_a_decommissioned_one_leaves(hecd, event_listener):
    apps = json.dumps({"shop": SHOP})
    _, _, job = changed_through_the_loop(
        hecd,
        event_listener,
        "cmdb.add",
        WEB3,
        f"ip={WEB_IPS[WEB3]}",
        "roles=base,web",
        "platform=Debian-12",
        "machine_type=container",
        "idc=lab",
        "env=test",
        "owner=web-team",
        f"apps={apps}",
    )
    try:
        assert job["success"] is True, by_id(job)
        serving({WEB1, WEB2, WEB3})
    finally:
        changed_through_the_loop(hecd, event_listener, "cmdb.remove", WEB3)
    serving({WEB1, WEB2})


def test_refresh_with_wait_returns_each_balancers_state_results(hecd, event_listener):
    start = time.time()
    change = ok(hecd["run"].run("cmdb.update", WEB1, "owner=shop-team"))
    try:
        # Called by hand beside the reactor's own call: the second state run waits
        # for the first (state.apply queue) instead of being refused.
        result = ok(
            hecd["run"].run("cmdb.refresh", f"version={change['version']}", "wait=True", "timeout=30")
        )
        assert result["applied"] == {LB: "lb"} and LB in result["refreshed"]
        summary = result["apply_results"][LB]
        assert summary["result"] is True and summary["failed"] == {} and summary["errors"] == []
        assert summary["states"] >= 3 and summary["retcode"] == 0
        assert "warning" not in result
        # The reactor's run for the same version went through as well.
        reactor = refresh_return(event_listener, hecd["master"], change["version"], start)
        assert reactor["applied"] == {LB: "lb"}
    finally:
        changed_through_the_loop(hecd, event_listener, "cmdb.update", WEB1, "owner=web-team")
    serving({WEB1, WEB2})


def test_an_invalid_balancer_config_is_refused_and_the_previous_one_keeps_serving(hecd, event_listener):
    serving({WEB1, WEB2})
    before = digest()
    # A health URL with a space makes `http-check send ... uri /health z ...` a
    # line haproxy rejects: the CMDB accepts the setting, haproxy -c does not.
    bad = json.dumps({"shop": dict(SHOP, health_url="/health z")})
    try:
        _, _, job = changed_through_the_loop(hecd, event_listener, "cmdb.update", WEB1, f"apps={bad}")
        states = by_id(job)
        refused = states["lb-config-file-file-managed"]
        assert refused["result"] is False and refused["changes"] == {}, refused
        assert "check_cmd" in refused["comment"] or "haproxy" in refused["comment"], refused["comment"]
        # The reload depends on the file: a refused file is never loaded.
        assert states["lb-service-running-service-running"]["result"] is False
        assert job["success"] is False or job["retcode"] != 0
        assert digest() == before, "the refused configuration replaced the old one"
        # The running haproxy still has the previous configuration and serves both hosts.
        serving({WEB1, WEB2})
    finally:
        _, _, fixed = changed_through_the_loop(
            hecd, event_listener, "cmdb.update", WEB1, f"apps={json.dumps({'shop': SHOP})}"
        )
    assert by_id(fixed)["lb-config-file-file-managed"]["result"] is True
    assert digest() != before  # the version in the header moved on
    serving({WEB1, WEB2})


def test_test_mode_reports_what_would_change_and_changes_nothing(hecd, event_listener):
    serving({WEB1, WEB2})
    _, refresh, _ = changed_through_the_loop(hecd, event_listener, "cmdb.update", WEB1, "owner=shop-team")
    try:
        # Someone edited the file by hand: the balancer state would put it back.
        edited = HAPROXY_CFG.read_text() + "# edited by hand\n"
        HAPROXY_CFG.write_text(edited)
        args = ("cmdb.refresh", f"version={refresh['version']}", "wait=True", "timeout=30")
        result = ok(hecd["run"].run(*args, "test=True"))
        assert result["apply_test"] is True and result["applied"] == {LB: "lb"}
        summary = result["apply_results"][LB]
        assert summary["result"] is True and "lb-config-file-file-managed" in summary["changed"]
        assert HAPROXY_CFG.read_text() == edited  # reported, not changed
        # The same call without test mode puts the file back.
        result = ok(hecd["run"].run(*args))
        assert result["apply_test"] is False and result["apply_results"][LB]["result"] is True
        assert "# edited by hand" not in HAPROXY_CFG.read_text()
    finally:
        changed_through_the_loop(hecd, event_listener, "cmdb.update", WEB1, "owner=web-team")
    serving({WEB1, WEB2})
