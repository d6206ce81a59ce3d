"""Two hot-hot masters sharing one MariaDB database, two minions connected to both.

What an operator relies on when a second master is added: the same pillar from
either master, a CMDB write made through one seen by the other, one deploy or
config push per app and env across both, the CMDB reaction run once, and every
alarm notified once, silences shared, and the alarms carried on by the
survivor when a master dies.  The tests share the daemons and run in file
order; the last one kills a master.
"""

import collections
import json
import os
import signal
import subprocess
import time

import psutil
import pytest
import sqlalchemy as sa

from saltops.alarms.schema import leases
from saltops.cmdb import repo
from saltops.cmdb.schema import refreshes
from saltops.confpush.schema import locks as confpush_locks
from saltops.confpush.schema import pushes as confpush_pushes
from tests.functional.deploy import deploy_appkit as kit
from tests.integration.multimaster.conftest import (
    APP,
    ENV,
    MINIONS,
    settle,
    two_masters,
    wait_for,
    write_beacons,
)
from tests.support.cli_output import last_document

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.mysql]

MM1, MM2 = MINIONS


@pytest.fixture(scope="module")
def mm(saltops_master_factory, make_mysql_database, receivers):
    database = make_mysql_database("saltops_mm")
    with two_masters(saltops_master_factory, database.url, receivers) as env:
        yield env


@pytest.fixture(scope="module")
def artifacts(mm):
    path = mm["base"] / "www"
    path.mkdir()
    with kit.ArtifactServer(str(path)) as server:
        yield server


def run(master, fun, *args, **kwargs):
    return master.salt_run_cli(timeout=180).run(fun, *args, **kwargs)


def pillar_cmdb(master, minion_id):
    """The CMDB record in ``minion_id``'s pillar as compiled by ``master`` (through its connection)."""
    cli = master.salt_cli(timeout=120)
    for _ in range(3):
        ret = cli.run("pillar.items", unmask=True, minion_tgt=minion_id)
        if ret.returncode == 0 and isinstance(ret.data, dict) and "cmdb" in ret.data:
            return ret.data["cmdb"]
        time.sleep(2)
    raise AssertionError(f"pillar.items of {minion_id} through {master.id} failed: {ret.stdout} {ret.stderr}")


# --------------------------------------------------------------------------- CMDB and pillar


def test_pillar_renders_give_the_same_cmdb_data_on_either_master(mm):
    m1, m2 = mm["masters"]
    for name in MINIONS:
        one, two = pillar_cmdb(m1, name), pillar_cmdb(m2, name)
        assert one["hostname"] == name and one["env"] == ENV and APP in one["apps"]
        assert one == two


def test_a_cmdb_write_through_one_master_reaches_the_other_masters_pillar(mm):
    m1, m2 = mm["masters"]
    for writer, reader, owner in ((m1, m2, "team-via-m1"), (m2, m1, "team-via-m2")):
        ret = run(writer, "cmdb.update", MM1, f"owner={owner}")
        assert ret.returncode == 0, ret
        version = ret.data["version"]
        # A write through another master is seen by the next render once
        # version_check_interval (1 s) has passed (docs/pillar.md): wait that long, then
        # one render must show it.
        time.sleep(1.2)
        record = pillar_cmdb(reader, MM1)
        assert (record["owner"], record["version"]) == (owner, version)


def test_the_cmdb_reaction_runs_once_when_both_masters_receive_the_change(mm, event_listener):
    m1, m2 = mm["masters"]
    # A config set for an app the change gives the host: the reaction includes a config push.
    spec = {"roots": [str(mm["base"] / "etc" / "mmcfg")], "values": {},
            "files": [{"path": str(mm["base"] / "etc" / "mmcfg" / "{hostname}.conf"), "template": "on\n"}]}
    ret = run(m1, "confpush.set", "app=mmcfg", f"env={ENV}", f"spec={json.dumps(spec)}")
    assert ret.returncode == 0, ret.stdout + ret.stderr
    with mm["store"].connect() as conn:
        apps = {**repo.get_host(conn, MM2)["apps"], "mmcfg": {}}
    start = time.time()
    ret = run(m1, "cmdb.update", MM2, "owner=team-once", f"apps={json.dumps(apps)}")
    assert ret.returncode == 0, ret
    version = ret.data["version"]
    # The write's master fired saltops/cmdb/changed; the other master receives it too.
    sent = run(m2, "event.send", "saltops/cmdb/changed", data={"version": version, "hostnames": [MM2]})
    assert sent.returncode == 0, sent

    def reactions(master, fun):
        return [e.data["return"] for e in event_listener.get_events([(master.id, "salt/run/*/ret")], after_time=start)
                if e.data.get("fun") == f"runner.{fun}"]

    for fun in ("cmdb.refresh", "confpush.on_cmdb_change"):
        assert wait_for(lambda: reactions(m1, fun) and reactions(m2, fun), timeout=120), \
            f"the reactor of each master did not run {fun}"
    with mm["store"].connect() as conn:
        row = conn.execute(sa.select(refreshes).where(refreshes.c.version == version)).first()
        pushed = conn.execute(sa.select(sa.func.count()).select_from(confpush_pushes)
                              .where(confpush_pushes.c.app == "mmcfg")).scalar()
    assert row.claimed_at is not None
    refreshes_published = [
        e for master in (m1, m2)
        for e in event_listener.get_events([(master.id, "salt/job/*/new")], after_time=start)
        if e.data.get("fun") == "saltutil.refresh_pillar" and MM2 in (e.data.get("minions") or [])
    ]
    assert len(refreshes_published) == 1, refreshes_published
    assert any("already done" in json.dumps(a) for m in (m1, m2) for a in reactions(m, "cmdb.refresh"))
    # One config push for the app the host gained; the other master's reaction stood down.
    assert pushed == 1
    pushes_answers = [a for m in (m1, m2) for a in reactions(m, "confpush.on_cmdb_change")]
    assert sorted(bool(a.get("already_handled")) for a in pushes_answers) == [False, True], pushes_answers


# --------------------------------------------------------------------------- locks across masters


def test_a_deploy_running_on_one_master_refuses_a_second_one_on_the_other(mm, artifacts):
    m1, m2 = mm["masters"]

    def deploy(master, version, **kw):
        path, digest = kit.build_artifact(artifacts.directory, version, app=APP)
        args = {"app": APP, "env": ENV, "version": version, "artifact": artifacts.url(path), "sha256": digest,
                "return_timeout": 10, **kw}
        return run(master, "deploy.run", *(f"{k}={v}" for k, v in args.items()))

    paused = deploy(m1, "1.0.0", strategy="canary", pause=True, canary_size=1)
    data = last_document(paused)
    assert data and data.get("status") == "paused", paused.stdout + paused.stderr
    deploy_id = data["id"]
    refused = deploy(m2, "1.1.0")
    assert refused.returncode != 0
    assert f"deploy {deploy_id} of {APP} 1.0.0 to {ENV} is in progress (paused" in refused.stdout + refused.stderr
    # The other master controls it too: the abort made there ends it.
    aborted = run(m2, "deploy.abort", str(deploy_id))
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr
    assert run(m1, "deploy.status", str(deploy_id)).data["status"] == "aborted"


def test_a_config_push_running_on_one_master_refuses_a_second_one_on_the_other(mm):
    m1, m2 = mm["masters"]
    base = mm["base"] / "etc" / "mmconf"
    release = mm["base"] / "release-first-push"
    spec = {"roots": [str(base)], "values": {"port": 8080},
            "files": [{"path": f"{base}/app.json", "template": '{"port": {{ values.port }}}\n',
                       "validator": "python3 -m json.tool"}],
            # Keeps the push (and its lock) busy until the test has tried a second one
            # (at most 3 minutes).
            "health_cmd": f"python3 -c \"import os, time; [time.sleep(0.2) for _ in range(900) "
                          f"if not os.path.exists('{release}')]\""}
    ret = run(m1, "confpush.set", f"app={APP}", f"env={ENV}", f"spec={json.dumps(spec)}")
    assert ret.returncode == 0, ret.stdout + ret.stderr
    cmd = m1.salt_run_cli(timeout=180).cmdline("confpush.push", f"app={APP}", f"env={ENV}", "batch_size=2")
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def held():
            with mm["store"].connect() as conn:
                return conn.execute(sa.select(confpush_locks.c.push_id)
                                    .where(confpush_locks.c.app == APP, confpush_locks.c.env == ENV)).scalar()
        push_id = wait_for(held, timeout=60, step=0.2)
        assert push_id, "the first push never took its lock"
        second = run(m2, "confpush.push", f"app={APP}", f"env={ENV}")
        data = last_document(second)
        assert second.returncode == 1 and data["result"] is False, second.stdout
        assert f"config push {push_id} of {APP}/{ENV}" in data["error"]
        assert "only one push per app and env" in data["error"]
        release.touch()
        out, _ = first.communicate(timeout=300)
        assert first.returncode == 0, out
    finally:
        release.touch()
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)


# --------------------------------------------------------------------------- alarms


def notified(receivers):
    """``Counter((alertname, host))`` over every firing alert the webhook receiver got."""
    return collections.Counter(
        (a["labels"]["alertname"], a["labels"]["host"])
        for g in receivers.of("hook") for a in g["body"]["alerts"] if a["status"] == "firing"
    )


def lease_holder(mm):
    with mm["store"].connect() as conn:
        holder = conn.execute(sa.select(leases.c.holder)).scalar()
    return next(m for m in mm["masters"] if holder and holder.startswith(m.id + "@"))


def test_beacons_reach_both_masters_and_each_alarm_is_notified_once(mm, receivers, event_listener):
    m1, m2 = mm["masters"]
    start = time.time()
    for master in (m1, m2):
        assert event_listener.wait_for_events(
            [(master.id, f"salt/beacon/{name}/mm_disk/") for name in MINIONS], after_time=start, timeout=120
        ).found_all_events, f"{master.id} got no beacon event from every minion"
    wanted = {("DiskUsageHigh", name) for name in MINIONS}
    assert wait_for(lambda: wanted <= set(notified(receivers)), timeout=120)
    settle(receivers)
    counts = notified(receivers)
    assert {k: counts[k] for k in wanted} == {k: 1 for k in wanted}, counts


def test_a_silence_made_on_one_master_mutes_the_other_at_once(mm, receivers):
    active = lease_holder(mm)
    standby = next(m for m in mm["masters"] if m is not active)
    sil = run(standby, "alarm.silence_add", matchers=f'host="{MM1}",alertname="DiskUsageLate"', duration="1h",
              comment="maintenance")
    assert sil.returncode == 0, sil.stdout
    mm["silence"] = sil.data["id"]
    # Switch the second beacon on for every minion, through both masters' connections.
    write_beacons(mm["stack"], ["mm_disk", "mm_late"])
    for master in mm["masters"]:
        assert master.salt_cli(timeout=120).run("saltutil.refresh_pillar", minion_tgt="*").returncode == 0
    assert wait_for(lambda: notified(receivers)[("DiskUsageLate", MM2)], timeout=120)
    settle(receivers)
    counts = notified(receivers)
    assert counts[("DiskUsageLate", MM2)] == 1 and counts[("DiskUsageLate", MM1)] == 0, counts
    listed = run(active, "alarm.list").data
    assert any(a["rule"] == "DiskUsageLate" and a["labels"]["host"] == MM1 for a in listed), listed


def test_when_the_active_master_dies_the_other_carries_on_with_nothing_lost_or_sent_twice(mm, receivers):
    active = lease_holder(mm)
    survivor = next(m for m in mm["masters"] if m is not active)
    before = notified(receivers)
    # A crash, not a clean stop: the whole process tree at once, the lease left to run out.
    procs = [psutil.Process(active.pid)]
    procs += procs[0].children(recursive=True)
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=30)
    # The silence ends, through the survivor: the muted alarm is due now, and only the
    # survivor can send it (after taking the lease over).
    ended = run(survivor, "alarm.silence_expire", mm["silence"])
    assert ended.returncode == 0 and ended.data["expired"] is True, ended.stdout
    assert wait_for(lambda: notified(receivers)[("DiskUsageLate", MM1)], timeout=120), "nothing after the takeover"
    assert lease_holder(mm) is survivor
    settle(receivers)
    after = notified(receivers)
    assert after[("DiskUsageLate", MM1)] == 1
    assert {k: v for k, v in after.items() if k != ("DiskUsageLate", MM1)} == dict(before), after
    assert set(after.values()) == {1}, after
