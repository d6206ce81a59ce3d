"""A master of masters over two syndics (one per IDC), one MariaDB CMDB behind all three masters.

Each IDC has its master with a ``salt-syndic`` beside it, the IDC master's own
host (a minion of that master, as a real IDC master host is managed too) and
one more host: two CMDB hosts per IDC.  The top master runs the runners and the
alarm engine and has no external pillar, so every ``cmdb`` pillar a minion gets
was rendered by its IDC master from the shared CMDB.  What a user relies on:
``salt`` and the runners on the top reach CMDB hosts behind either syndic, a
deploy's batches take hosts of both IDCs, and a beacon alarm of a host behind a
syndic is notified once.

Salt 3008.4 relays through a syndic only with two settings (docs/scale.md,
Syndic): ``transport: tcp`` in the whole tree, and ``publish_port`` in the
syndic's minion config.
"""

import collections
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from saltops.deploy.schema import hosts as deploy_hosts
from saltops.store import get_store
from tests.functional.deploy import deploy_appkit as kit
from tests.integration.multimaster.conftest import (
    alarm_settings,
    beacon_stack,
    settle,
    stack_pillar,
    wait_for,
)
from tests.support import saltenv

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.mysql]

APP = "synshop"
ENV = "test"
# syndic id (= its IDC master's id and the id of that master's own minion) -> (CMDB idc, other hosts)
IDCS = {"idc1.syn.test": ("bj-idc1", ("s1.syn.test",)), "idc2.syn.test": ("sh-idc1", ("s2.syn.test",))}
HOSTS = {name: idc for syndic_id, (idc, others) in IDCS.items() for name in (syndic_id, *others)}

# The syndic sends requests up through a synchronous request channel from inside its
# event loop; on the ZeroMQ transport only the first one reaches the top (docs/scale.md).
TRANSPORT = {"transport": "tcp"}
# A syndic takes the upper master's publish port from its minion config; without one it
# uses its own master's ``publish_port`` (only right when both masters use the same port).
# 4506 is the value Salt reads as "not set": the port the top reports at authentication.
SYNDIC_MINION = {**TRANSPORT, "publish_port": 4506}

RULES = {
    "rules": [{"name": "SyndicDisk", "beacon": "syn_disk", "field": "diskusage", "op": ">=", "threshold": 1,
               "key": ["mount"], "severity": "warning"}],
    "route": {"receiver": "ops", "group_by": ["alertname", "host"], "group_wait": "1s",
              "group_interval": "2s", "repeat_interval": "1h"},
    "receivers": {"ops": {"channels": ["hook"]}},
}


def _records(base):
    return [{
        "hostname": name, "ip": "127.0.0.1", "lines": {"telecom": "127.0.0.1"}, "roles": ["web"],
        "platform": "Debian-12", "machine_type": "vm", "idc": idc, "env": ENV, "status": "online",
        "owner": "web-team",
        "apps": {APP: kit.app_settings(os.path.join(base, "hosts", name), kit.free_port(), keep=2)},
    } for name, idc in HOSTS.items()]


def _start_idc(top, syndic_id, others, db_url, users_file, ext_pillar, started):
    """The IDC master (SaltOps' external pillar, no engines), its syndic, its own minion and ``others``."""
    idc_master = saltenv.master_overrides(db_url, users_file, extra={
        "ext_pillar": ext_pillar, "engines": [], "auto_accept": True, **TRANSPORT})
    syndic = top.salt_syndic_daemon(syndic_id, overrides=TRANSPORT, master_overrides=idc_master,
                                    minion_overrides=saltenv.minion_overrides(SYNDIC_MINION))
    kit.write_hooks_pillar(syndic.master.config["pillar_roots"]["base"][0], also=["saltops"])
    # Starting the syndic starts its master and that master's own minion first.
    started.extend([syndic.master, syndic.minion])
    syndic.start(start_timeout=120)
    started.append(syndic)
    for name in others:
        minion = syndic.master.salt_minion_daemon(name, overrides=saltenv.minion_overrides(TRANSPORT))
        minion.start(start_timeout=120)
        started.append(minion)
    return syndic


@pytest.fixture(scope="module")
def tree_of_masters(saltops_master_factory, saltops_users, make_mysql_database, receivers):
    base = Path(tempfile.mkdtemp(prefix="sosy-", dir="/tmp"))
    db_url = make_mysql_database("saltops_syn").url
    store = get_store(db_url)
    store.migrate()
    repo.write(store, "tests", _records(str(base)), rules=Rules.from_config(config.load({})))
    rules_file = base / "rules.yml"
    rules_file.write_text(yaml.safe_dump(RULES))
    ext_pillar = stack_pillar(beacon_stack(base, ["syn_disk"]))
    # The top holds no minion keys (the IDC masters accepted them) and renders no pillar.
    settings, _port = alarm_settings(rules_file, receivers, require_accepted_key=False)
    top = saltops_master_factory("syn-top", db_url=db_url, extra={
        "order_masters": True, "ext_pillar": [], "engines": [{"saltops_alarms": {}}], "saltops": settings,
        **TRANSPORT})
    started = []
    try:
        top.start(start_timeout=120)
        started.append(top)
        users = saltops_users["file"]
        syndics = {syndic_id: _start_idc(top, syndic_id, others, db_url, users, ext_pillar, started)
                   for syndic_id, (_idc, others) in IDCS.items()}
        cli = top.salt_cli(timeout=60)
        answered = wait_for(lambda: set(HOSTS) <= set(cli.run("test.ping", minion_tgt="*").data or {}),
                            timeout=180)
        assert answered, "the minions behind the syndics do not answer the top master"
        # SaltOps' execution modules and beacons, from each IDC master's file server.
        for sync in ("saltutil.sync_modules", "saltutil.sync_beacons"):
            ret = top.salt_cli(timeout=120).run(sync, minion_tgt="*")
            assert ret.returncode == 0, ret
        yield {"top": top, "syndics": syndics, "store": store, "base": base}
    finally:
        for daemon in reversed(started):
            with contextlib.suppress(Exception):
                daemon.terminate()
        kit.stop_apps(str(base))
        shutil.rmtree(base, ignore_errors=True)


def test_salt_on_the_top_reaches_every_minion_behind_both_syndics(tree_of_masters):
    ret = tree_of_masters["top"].salt_cli(timeout=60).run("test.ping", minion_tgt="*")
    assert ret.returncode == 0, ret
    assert ret.data == {name: True for name in HOSTS}


def test_cmdb_targets_on_the_top_reach_the_hosts_of_each_idc(tree_of_masters):
    top = tree_of_masters["top"]
    for syndic_id, (idc, others) in IDCS.items():
        targets = top.salt_run_cli(timeout=120).run("cmdb.targets", f"idc={idc}", sep=",")
        assert targets.returncode == 0, targets
        names = targets.stdout.strip().strip('"')
        assert sorted(names.split(",")) == sorted((syndic_id, *others))
        ret = top.salt_cli(timeout=60).run("-L", "grains.item", "id", minion_tgt=names)
        assert {name: data["id"] for name, data in ret.data.items()} == {n: n for n in names.split(",")}, ret


def test_the_idc_masters_render_each_hosts_pillar_from_the_same_cmdb(tree_of_masters):
    top, store = tree_of_masters["top"], tree_of_masters["store"]
    cli = top.salt_cli(timeout=60)

    def rendered(names, field):
        """``field`` of each host's ``cmdb`` pillar, compiled afresh by its master (``pillar.items``)."""
        ret = cli.run("-L", "pillar.items", unmask=True, minion_tgt=",".join(names))
        data = ret.data or {}
        return {n: d["cmdb"][field] for n, d in data.items() if isinstance(d, dict) and "cmdb" in d}

    assert rendered(HOSTS, "idc") == HOSTS
    # A write through the top's runner is in the next render of either IDC master.
    for name in ("s1.syn.test", "s2.syn.test"):
        upd = top.salt_run_cli(timeout=120).run("cmdb.update", name, "owner=dba-team")
        assert upd.returncode == 0, upd.stdout + upd.stderr

    others = ("s1.syn.test", "s2.syn.test")
    want = dict.fromkeys(others, "dba-team")
    seen = wait_for(lambda: rendered(others, "owner") == want, timeout=60, step=2)
    assert seen, rendered(others, "owner")
    with store.connect() as conn:
        assert {r["owner"] for r in repo.get_hosts(conn, list(others)).values()} == {"dba-team"}


def test_a_deploy_from_the_top_spreads_its_batches_over_both_idcs(tree_of_masters):
    top, store = tree_of_masters["top"], tree_of_masters["store"]
    www = tree_of_masters["base"] / "www"
    www.mkdir()
    with kit.ArtifactServer(str(www)) as artifacts:
        path, digest = kit.build_artifact(str(www), "3.0.0", app=APP)
        ret = top.salt_run_cli(timeout=300).run(
            "deploy.run", f"app={APP}", f"env={ENV}", "version=3.0.0", f"artifact={artifacts.url(path)}",
            f"sha256={digest}", "batch_size=2", "max_share=0.5", "return_timeout=20")
    assert ret.returncode == 0, ret.stdout + ret.stderr
    with store.connect() as conn:
        latest = sa.select(sa.func.max(deploy_hosts.c.deploy_id)).scalar_subquery()
        rows = conn.execute(sa.select(deploy_hosts.c.hostname, deploy_hosts.c.batch, deploy_hosts.c.status)
                            .where(deploy_hosts.c.deploy_id == latest)).all()
    batches = collections.defaultdict(set)
    for row in rows:
        batches[row.batch].add(HOSTS[row.hostname])
    assert sorted(r.hostname for r in rows) == sorted(HOSTS)
    assert len(batches) == 2, dict(batches)
    assert all(idcs == {"bj-idc1", "sh-idc1"} for idcs in batches.values()), dict(batches)
    with store.connect() as conn:
        records = repo.get_hosts(conn, list(HOSTS)).values()
    serving = {r["hostname"]: kit.get(f"http://127.0.0.1:{r['apps'][APP]['port']}/healthz") for r in records}
    assert serving == {name: (200, "ok 3.0.0") for name in HOSTS}


def test_an_alarm_of_a_host_behind_a_syndic_is_notified_once(tree_of_masters, receivers):
    def notified():
        alerts = [a for g in receivers.of("hook") for a in g["body"]["alerts"]]
        return collections.Counter(a["labels"]["host"] for a in alerts
                                   if a["labels"]["alertname"] == "SyndicDisk" and a["status"] == "firing")

    assert wait_for(lambda: set(HOSTS) <= set(notified()), timeout=180), notified()
    settle(receivers)
    counts = notified()
    assert dict(counts) == {name: 1 for name in HOSTS}, counts
    alerts = [a for g in receivers.of("hook") for a in g["body"]["alerts"]]
    alert = next(a for a in alerts if a["labels"]["host"] == "s2.syn.test")
    assert alert["labels"]["idc"] == "sh-idc1"
