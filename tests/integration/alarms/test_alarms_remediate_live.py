"""End to end: a real beacon raises an alarm whose rule has ``remediate:``, the engine fires
``saltops/alarm/<fp>/firing``, the reactor calls ``alarm.remediate`` and the action runs on the
minion exactly once; forged batched events from a minion run nothing more.

Real master (alarm engine, reactor), real minion (diskusage beacon, state.apply), SQLite store.
"""

import time

import pytest
import sqlalchemy as sa
from conftest import alarm_master, wait_for

from saltops.alarms.schema import alarms, remediations
from saltops.store.schema import event_outbox
from tests.support.alarm_receivers import channel_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MINION = "alarm-app01.lab.saltops"

RULES = {
    "rules": [
        {"name": "DiskNeedsCleanup", "beacon": "alarm_fix_disk", "field": "diskusage", "op": ">=", "threshold": 1,
         "key": ["mount"], "severity": "warning",
         "remediate": {"function": "state.apply", "args": ["alarm_fix"], "cooldown": "1h"}},
    ],
    "route": {"receiver": "ops", "group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"},
    "receivers": {"ops": {"channels": ["hook"]}},
}


@pytest.fixture(scope="module")
def fix_env(saltops_master_factory, salt_factories, receivers, tmp_path_factory):
    root = tmp_path_factory.mktemp("remediate")
    ledger = root / "ran"
    # The remediation leaves one line per run on the minion's side.
    state = f"alarm-fix-ledger:\n  cmd.run:\n    - name: echo {{{{ grains['id'] }}}} >> {ledger}\n"
    beacon = {"alarm_fix_disk": [{"beacon_module": "diskusage"}, {"/": "1%"}, {"interval": 2}]}
    with alarm_master(saltops_master_factory, salt_factories, root, "alarms-fix-master", MINION, RULES, beacon,
                      channel_config(receivers), states={"alarm_fix.sls": state}) as env:
        env["ledger"] = ledger
        yield env


def runs_on_minion(env):
    return env["ledger"].read_text().splitlines() if env["ledger"].exists() else []


def stored(env, table, *where):
    with env["store"].connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table).where(*where))]


def firing_fp(env):
    rows = stored(env, alarms, alarms.c.rule == "DiskNeedsCleanup", alarms.c.state == "firing")
    return rows[0]["fingerprint"] if rows else None


def test_a_beacon_alarm_reaches_the_reactor_and_its_remediation_runs_once(fix_env):
    fp = wait_for(lambda: firing_fp(fix_env), timeout=180)
    assert fp, "the beacon raised no alarm"
    assert wait_for(lambda: runs_on_minion(fix_env), timeout=180) == [MINION], "the remediation never ran"
    (run,) = wait_for(lambda: [r for r in stored(fix_env, remediations) if r["ok"] is not None], timeout=60)
    assert (run["fingerprint"], run["host"], run["function"], run["args"]) == (
        fp, MINION, "state.apply", ["alarm_fix"])
    assert run["ok"] is True and run["detail"] == "1 states ok"
    (alarm,) = stored(fix_env, alarms, alarms.c.fingerprint == fp)
    assert run["episode"] == round(alarm["fired_at"] * 1000)
    # The event left the outbox: fired, and marked sent.
    events = stored(fix_env, event_outbox, event_outbox.c.tag == f"saltops/alarm/{fp}/firing")
    assert len(events) == 1 and events[0]["sent_at"] is not None
    # The beacon reports the same problem again (every 40 s or so here): still one run.
    before = wait_for(lambda: _accepted(fix_env), timeout=30)
    assert wait_for(lambda: _accepted(fix_env) >= before + 1, timeout=150)
    assert runs_on_minion(fix_env) == [MINION] and len(stored(fix_env, remediations)) == 1


def _accepted(env):
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{env['port']}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith("saltops_alarm_events_accepted_total "):
            return float(line.split()[-1])
    return 0.0


def test_forged_batched_alarm_events_from_a_minion_run_nothing(fix_env):
    import salt.utils.event

    fp = wait_for(lambda: firing_fp(fix_env), timeout=180)
    assert wait_for(lambda: runs_on_minion(fix_env), timeout=180) == [MINION]
    unknown = "0123456789abcdef"
    # What a compromised minion can put on the master bus: the master fires each event of the
    # batch as written (no `cmd` key, any tag), here with data naming another action entirely.
    forged_data = {"fingerprint": fp, "host": MINION, "function": "cmd.run", "args": ["reboot"]}
    batch = [{"tag": f"saltops/alarm/{fp}/firing", "data": forged_data}] * 3
    batch.append({"tag": f"saltops/alarm/{unknown}/firing", "data": dict(forged_data, fingerprint=unknown)})
    opts = fix_env["master"].config
    listener = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=True)
    try:
        call = fix_env["minion"].salt_call_cli(timeout=60)
        sent = call.run("event.send", f"saltops/alarm/{fp}/firing", preload={"events": batch})
        assert sent.returncode == 0 and sent.data is True, sent
        answers = []
        deadline = time.time() + 120
        while len(answers) < 4 and time.time() < deadline:
            event = listener.get_event(wait=1, tag="salt/run/", full=True)
            if event and event["tag"].endswith("/ret") and event["data"].get("fun") == "runner.alarm.remediate":
                answers.append(event["data"]["return"])
    finally:
        listener.destroy()
    assert len(answers) == 4, answers
    repeated = [a for a in answers if a.get("fingerprint") == fp]
    assert len(repeated) == 3
    for answer in repeated:
        assert answer["remediated"] is False and "already" in answer["reason"], answer
        assert answer["function"] == "state.apply" and answer["args"] == ["alarm_fix"]
    (refused,) = [a for a in answers if a.get("fingerprint") != fp]
    assert refused["result"] is False and f"no alarm with fingerprint {unknown}" in refused["error"]
    assert runs_on_minion(fix_env) == [MINION]
    assert len(stored(fix_env, remediations)) == 1
