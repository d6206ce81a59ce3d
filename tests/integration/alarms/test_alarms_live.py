"""A real beacon on a real minion raises a real alarm, delivered to local receivers.

Also through the real master: forged events rejected and counted, what a batched beacon
event's unauthenticated id lets a minion claim, the alarm runner, and a master restart that
keeps the firing alarm and sends no duplicate.
"""

import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import MINION, WEBHOOK_TOKEN, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def metric(port, series):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def disk_alerts(receivers, kind="hook"):
    return [a for g in receivers.of(kind) for a in g["body"]["alerts"]
            if a["labels"]["alertname"] == "DiskUsageHigh"] if kind == "hook" else receivers.of(kind)


def test_beacon_raises_an_alarm_on_every_channel(alarm_env, receivers, smtp):
    got = wait_for(lambda: disk_alerts(receivers), timeout=120)
    assert got, "no DiskUsageHigh notification from the diskusage beacon"
    alert = got[0]
    assert alert["labels"]["host"] == MINION and alert["labels"]["mount"] == "/"
    # Labels from the CMDB record of the host.
    assert alert["labels"]["idc"] == "bj-idc1" and alert["labels"]["env"] == "prod"
    assert alert["labels"]["role"] == "base,web" and alert["labels"]["owner"] == "web-team"
    assert "% full" in alert["annotations"]["summary"]
    assert receivers.wait("wecom", 1) and receivers.wait("dingtalk", 1)
    assert smtp.wait(1)[0][1]["Subject"].startswith("[saltops] [P2] [FIRING:1] DiskUsageHigh")


def test_runner_lists_acks_and_silences(alarm_env, receivers):
    run = alarm_env["master"].salt_run_cli(timeout=60)
    wait_for(lambda: disk_alerts(receivers), timeout=120)
    ret = run.run("alarm.list")
    assert ret.returncode == 0, ret
    (alarm,) = [a for a in ret.data if a["rule"] == "DiskUsageHigh"]
    assert alarm["labels"]["host"] == MINION and alarm["state"] == "firing"
    assert run.run("alarm.rules_check").data["rules"] == ["DiskUsageHigh", "LoadHigh"]
    # salt-run exits 0 on invalid arguments; the message is what the user sees.
    bad = run.run("alarm.ack", "zz")
    assert "16 hex digits" in bad.stdout
    ack = run.run("alarm.ack", alarm["fingerprint"], comment="looking")
    assert ack.returncode == 0 and ack.data["fingerprint"] == alarm["fingerprint"]
    hist = run.run("alarm.history", fingerprint=alarm["fingerprint"]).data
    assert [h["event"] for h in hist][:1] == ["acked"]
    sil = run.run("alarm.silence_add", matchers='host="nowhere",alertname=~"Disk.*"', duration="1h",
                  comment="test")
    assert sil.returncode == 0, sil
    listed = run.run("alarm.silence_list").data
    assert {s["kind"] for s in listed} == {"ack", "silence"}
    assert run.run("alarm.silence_expire", sil.data["id"]).data["expired"] is True
    refused = run.run("alarm.silence_add", matchers='host=~".*"', duration="1h", comment="all")
    assert "match every alert" in refused.stdout
    test = run.run("alarm.test", "wecom", message="hello from the test")
    assert test.returncode == 0 and test.data["delivered"] is True
    assert any("hello from the test" in g["body"]["markdown"]["content"] for g in receivers.of("wecom"))
    assert "no channel 'nope'" in run.run("alarm.test", "nope").stdout


def test_the_engine_serves_the_webhook_only_with_its_token(alarm_env):
    port = alarm_env["port"]
    url = f"http://127.0.0.1:{port}/api/v1/alertmanager"
    # A resolved alert for an alarm that does not exist: taken, and changes nothing else here.
    body = json.dumps({"version": "4", "status": "resolved", "alerts": [
        {"status": "resolved", "labels": {"alertname": "WebhookProbe", "instance": "nowhere:9100"},
         "startsAt": "2024-05-01T10:00:00Z", "endsAt": "2024-05-01T10:05:00Z"}]}).encode()

    def post(headers):
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    before = metric(port, 'saltops_alarm_webhook_rejected_total{reason="unauthorized"}')
    assert post({})[0] == 401
    assert post({"Authorization": "Bearer not-the-token-at-all"})[0] == 401
    assert post({"Authorization": f"Bearer {WEBHOOK_TOKEN}"}) == (200, {"accepted": 1})
    assert metric(port, 'saltops_alarm_webhook_rejected_total{reason="unauthorized"}') == before + 2
    get = urllib.request.Request(url, method="GET")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(get, timeout=10)
    assert err.value.code == 405 and err.value.headers["Allow"] == "POST"


def test_forged_events_through_the_real_master_are_rejected(alarm_env):
    port = alarm_env["port"]
    minion = alarm_env["minion"]
    call = minion.salt_call_cli(timeout=60)
    before = metric(port, 'saltops_alarm_events_rejected_total{reason="id_mismatch"}')
    # A minion claiming to be another host: the tag names the victim, the authenticated id is the sender.
    ret = call.run("event.send", "salt/beacon/db01.lab.saltops/diskusage/",
                   data={"diskusage": 99.0, "mount": "/", "id": "db01.lab.saltops"})
    assert ret.returncode == 0
    assert wait_for(lambda: metric(port, 'saltops_alarm_events_rejected_total{reason="id_mismatch"}') > before, 30)
    # Events put straight on the master bus for a minion with no accepted key.
    import salt.utils.event

    opts = alarm_env["master"].config
    bus = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False)
    try:
        before_unknown = metric(port, 'saltops_alarm_events_rejected_total{reason="unknown_minion"}')
        before_large = metric(port, 'saltops_alarm_events_rejected_total{reason="too_large"}')
        bus.fire_event({"id": "ghost01", "diskusage": 99.0, "mount": "/"}, "salt/beacon/ghost01/diskusage/")
        bus.fire_event({"id": MINION, "diskusage": 99.0, "mount": "/", "pad": "x" * 200000},
                       f"salt/beacon/{MINION}/diskusage/")
        assert wait_for(lambda: metric(port, 'saltops_alarm_events_rejected_total{reason="unknown_minion"}')
                        > before_unknown, 30)
        assert wait_for(lambda: metric(port, 'saltops_alarm_events_rejected_total{reason="too_large"}')
                        > before_large, 30)
    finally:
        bus.destroy()
    run = alarm_env["master"].salt_run_cli(timeout=60)
    hosts = {a["labels"]["host"] for a in run.run("alarm.list", state="all").data}
    assert hosts == {MINION}


VICTIM = "alarm-db01.lab.saltops"


def test_batched_beacon_events_carry_an_unauthenticated_id(alarm_env, receivers):
    """What the engine can and cannot tell about a beacon batch (Salt 3008.4).

    A minion sends beacon events to the master in a batch, and the master fires each event's data
    as the minion wrote it: ``data.id`` is a claim.  Anything on a minion that can write to its
    local event bus can hand the minion such a batch (``__beacons_return``).  The engine rejects a
    batch whose tag and id disagree or whose id has no accepted key, but a consistent claim to be
    another accepted minion is taken as that minion: the documented limit of the trust model.
    """
    master = alarm_env["master"]
    port = alarm_env["port"]
    pki = Path(master.config["pki_dir"]) / "minions"
    shutil.copy(pki / MINION, pki / VICTIM)  # a second accepted minion, the one being impersonated
    call = alarm_env["minion"].salt_call_cli(timeout=60)
    run = master.salt_run_cli(timeout=60)

    def batch(tag, data):
        ret = call.run("event.fire", data={"beacons": [{"tag": tag, "data": data}]}, tag="__beacons_return")
        assert ret.returncode == 0 and ret.data is True, ret

    def rejected(reason):
        return metric(port, f'saltops_alarm_events_rejected_total{{reason="{reason}"}}')

    def claimed(state="firing"):
        return [a for a in run.run("alarm.list", state=state).data if a["labels"]["host"] == VICTIM]

    try:
        mismatch, unknown = rejected("id_mismatch"), rejected("unknown_minion")
        batch(f"salt/beacon/{VICTIM}/load/", {"id": MINION, "1m": 5000.0})
        assert wait_for(lambda: rejected("id_mismatch") > mismatch, 60)
        batch("salt/beacon/ghost02.lab.saltops/load/", {"id": "ghost02.lab.saltops", "1m": 5000.0})
        assert wait_for(lambda: rejected("unknown_minion") > unknown, 60)
        batch(f"salt/beacon/{VICTIM}/load/", {"id": VICTIM, "1m": 5000.0})
        (alarm,) = wait_for(claimed, 60)
        assert alarm["rule"] == "LoadHigh" and alarm["value"] == 5000.0
    finally:
        # The claim resolves like any alarm; leave no firing alarm behind for the next test.
        batch(f"salt/beacon/{VICTIM}/load/", {"id": VICTIM, "1m": 0.0})
        assert wait_for(lambda: not claimed(), 60)
        assert wait_for(lambda: [a for g in receivers.of("hook") for a in g["body"]["alerts"]
                                 if a["labels"]["host"] == VICTIM and a["status"] == "resolved"], 60)
        (pki / VICTIM).unlink()


def test_master_restart_keeps_the_alarm_and_sends_no_duplicate(alarm_env, receivers):
    wait_for(lambda: disk_alerts(receivers), timeout=120)
    master, port = alarm_env["master"], alarm_env["port"]
    sent_before = len(receivers.of("hook"))
    master.terminate()
    master.start(start_timeout=120)
    run = master.salt_run_cli(timeout=60)
    firing = run.run("alarm.list").data
    assert [a["rule"] for a in firing] == ["DiskUsageHigh"]
    # The restarted engine evaluates once the lease of the engine that died has run out.
    assert wait_for(lambda: metric(port, "saltops_alarm_engine_active") == 1, 90)
    # The beacon keeps reading the disk every 2 s: the engine must not announce the same alarm again.
    before = metric(port, "saltops_alarm_events_accepted_total")
    assert wait_for(lambda: metric(port, "saltops_alarm_events_accepted_total") >= before + 3, 90)
    # group_wait 1 s, group_interval 2 s: a repeated notification would be out by now.
    time.sleep(6)
    assert len(receivers.of("hook")) == sent_before
    assert [a["rule"] for a in run.run("alarm.list").data] == ["DiskUsageHigh"]


def test_host_silences_and_inhibitions_reach_prometheus_alerts(alarm_env, receivers):
    """Alertmanager alerts name machines by address (`instance: <ip>:9100`); the engine gives them the
    CMDB host, so a maintenance silence on a host and an `equal: [host]` inhibition mute them too."""
    hosts = {name: ip for name, ip in (("promdb01.lab.saltops", "10.77.0.5"), ("promweb01.lab.saltops", "10.77.0.6"),
                                       ("promcache01.lab.saltops", "10.77.0.7"))}
    run = alarm_env["master"].salt_run_cli(timeout=60)
    for name, ip in hosts.items():
        # Through the runner: it moves this master's CMDB version stamp, which the engine's labels read.
        added = run.run("cmdb.add", name, f"ip={ip}", "lines=" + json.dumps({"intranet": ip}), "roles=base",
                        "idc=sh-idc1", "env=prod", "platform=Debian-12", "machine_type=vm", "owner=ops")
        assert added.returncode == 0 and "error" not in added.data, added
    sil = run.run("alarm.silence_add", matchers='host="promdb01.lab.saltops"', duration="1h",
                  comment="maintenance")
    assert sil.returncode == 0 and sil.data["id"], sil
    url = f"http://127.0.0.1:{alarm_env['port']}/api/v1/alertmanager"

    def alert(name, ip, severity, status="firing"):
        return {"status": status, "labels": {"alertname": name, "instance": f"{ip}:9100", "job": "node",
                                             "severity": severity},
                "annotations": {"summary": f"{name} on {ip}"}, "startsAt": "2026-12-01T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-01T10:05:00Z"}

    alerts = [alert("NodeFilesystemFull", hosts["promdb01.lab.saltops"], "warning"),  # silenced
              alert("NodeFilesystemFull", hosts["promweb01.lab.saltops"], "warning"),
              alert("NodeDown", hosts["promcache01.lab.saltops"], "critical"),
              alert("NodeLoadHigh", hosts["promcache01.lab.saltops"], "warning"),  # inhibited by NodeDown
              alert("NodeLoadHigh", hosts["promweb01.lab.saltops"], "warning")]

    def post(batch, status="firing"):
        body = json.dumps({"version": "4", "status": status, "alerts": batch}).encode()
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json",
                                                              "Authorization": f"Bearer {WEBHOOK_TOKEN}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def sent(alertname):
        return [a["labels"] for g in receivers.of("hook") for a in g["body"]["alerts"]
                if a["labels"]["alertname"] == alertname and a["status"] == "firing"]

    try:
        assert post(alerts) == {"accepted": len(alerts)}
        # Each group went out once its wait passed: the silenced and inhibited alerts are not in it.
        fs = wait_for(lambda: sent("NodeFilesystemFull"), 60)
        load = wait_for(lambda: sent("NodeLoadHigh"), 60)
        assert wait_for(lambda: sent("NodeDown"), 60)[0]["host"] == "promcache01.lab.saltops"
        assert [a["host"] for a in fs] == ["promweb01.lab.saltops"]
        assert [a["host"] for a in load] == ["promweb01.lab.saltops"]
        assert fs[0]["idc"] == "sh-idc1" and fs[0]["instance"] == "10.77.0.6:9100"  # CMDB labels by address
        stored = {(a["rule"], a["labels"]["host"]) for a in run.run("alarm.list").data}
        assert ("NodeFilesystemFull", "promdb01.lab.saltops") in stored  # kept, only muted
        assert ("NodeLoadHigh", "promcache01.lab.saltops") in stored
    finally:
        post([alert(a["labels"]["alertname"], a["labels"]["instance"].split(":")[0], a["labels"]["severity"],
                    "resolved") for a in alerts], status="resolved")
        run.run("alarm.silence_expire", sil.data["id"])
