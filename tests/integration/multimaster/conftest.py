"""Two hot-hot masters on one MariaDB database, and two minions connected to both.

As Salt's multi-master set-up asks, both masters use the same key pair (the
second gets a copy of the first's ``master.pem``/``master.pub`` before it
starts) and every minion lists both masters (``master: [m1, m2]`` with their
ports).  Each master runs SaltOps as the tests' shared master does, plus the
alarm engine on the same rules file with a webhook channel to a local HTTP
receiver, and a PillarStack layer of the test's own with the beacons
(``stack/beacons.yml``, rewritten by tests that add one).

Module-scoped through :func:`two_masters`: the daemons cost ~30 s to start on
this machine, so one module shares them.
"""

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from saltops.paths import tree
from saltops.saltconf import EXT_PILLAR
from saltops.store import get_store
from tests.functional.deploy import deploy_appkit as kit
from tests.support import saltenv
from tests.support.alarm_receivers import Receivers, channel_config, free_port

MASTERS = ("mm-master-1", "mm-master-2")
MINIONS = ("mm1.mm.test", "mm2.mm.test")
PLACES = {"mm1.mm.test": ("bj-idc1", "telecom"), "mm2.mm.test": ("sh-idc1", "unicom")}
APP = "mmshop"
ENV = "test"

RULES = {
    "rules": [
        # 1 %: the disk under / is always above it, so each minion's beacon raises the alarm.
        {"name": "DiskUsageHigh", "beacon": "mm_disk", "field": "diskusage", "op": ">=", "threshold": 1,
         "key": ["mount"], "severity": "warning"},
        # The same for a beacon tests switch on later (stack/beacons.yml).
        {"name": "DiskUsageLate", "beacon": "mm_late", "field": "diskusage", "op": ">=", "threshold": 1,
         "key": ["mount"], "severity": "warning"},
    ],
    "route": {"receiver": "ops", "group_by": ["alertname", "host"], "group_wait": "1s", "group_interval": "2s",
              "repeat_interval": "1h"},
    "receivers": {"ops": {"channels": ["hook"]}},
}

BEACON = [{"beacon_module": "diskusage"}, {"/": "1%"}, {"interval": 2}]


@pytest.fixture(scope="module")
def receivers():
    """A local HTTP server standing in for the webhook receiver, counting every notification."""
    r = Receivers().start()
    yield r
    r.stop()


def alarm_settings(rules_file, receivers, **alarms):
    """``saltops:`` settings of a master running the alarm engine on ``rules_file``: returns
    ``(settings, port)`` with the engine's HTTP endpoint on a free port."""
    port = free_port()
    return {
        "alarms": {"rules_file": str(rules_file), "listen_port": port, "tick": 0.1, **alarms},
        "notify": {"channels": channel_config(receivers), "retry": {"backoff": "1s", "max_backoff": "5s"}},
    }, port


def wait_for(cond, timeout=90, step=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(step)
    return last


def settle(receivers):
    """Nothing new for three group intervals (2 s each) of the tests' rules: what was due was sent."""
    receivers.settle(6)


def write_beacons(stack_dir, names):
    (Path(stack_dir) / "beacons.yml").write_text(yaml.safe_dump({"beacons": {n: BEACON for n in names}}))


def beacon_stack(base, names):
    """A PillarStack layer of the test's own under ``base/stack`` giving every minion the beacons ``names``."""
    stack = Path(base) / "stack"
    stack.mkdir()
    (stack / "stack.cfg").write_text("beacons.yml\n")
    write_beacons(stack, names)
    return stack


def stack_pillar(stack):
    """``ext_pillar``: the CMDB, the shipped PillarStack, then the test's own layer (its beacons).

    Beacons from pillar replace the minion config's ``beacons`` entirely (Salt 3008), so the
    test's beacons sit beside the shipped pillar's.
    """
    return [{EXT_PILLAR: {}}, {"stack": str(tree("pillar") / "stack" / "stack.cfg")},
            {"stack": str(Path(stack) / "stack.cfg")}]


def host_records(base_dir):
    records = []
    for name in MINIONS:
        idc, line = PLACES[name]
        records.append({
            "hostname": name, "ip": "127.0.0.1", "lines": {line: "127.0.0.1"}, "roles": ["web"],
            "platform": "Debian-12", "machine_type": "vm", "idc": idc, "env": ENV, "status": "online",
            "owner": "web-team",
            "apps": {APP: kit.app_settings(os.path.join(base_dir, "hosts", name), kit.free_port(), keep=2)},
        })
    return records


def share_master_keys(first, second):
    """Copy the first master's key pair to the second (before it starts), as multi-master requires."""
    src, dst = Path(first.config["pki_dir"]), Path(second.config["pki_dir"])
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("master.pem", "master.pub"):
        shutil.copyfile(src / name, dst / name)
    os.chmod(dst / "master.pem", 0o400)


def master_addresses(masters):
    return [f"127.0.0.1:{m.config['ret_port']}" for m in masters]


@contextlib.contextmanager
def two_masters(saltops_master_factory, db_url, receivers, alarms=None):
    """Start both masters and both minions; yields a dict of what the tests need."""
    base = Path(tempfile.mkdtemp(prefix="somm-", dir="/tmp"))
    store = get_store(db_url)
    store.migrate()
    repo.write(store, "tests", host_records(str(base)), rules=Rules.from_config(config.load({})))
    rules_file = base / "rules.yml"
    rules_file.write_text(yaml.safe_dump(RULES))
    stack = beacon_stack(base, ["mm_disk"])
    ports = {}
    masters = []
    for master_id in MASTERS:
        settings, ports[master_id] = alarm_settings(rules_file, receivers, lease=3, **(alarms or {}))
        extra = {
            "ext_pillar": stack_pillar(stack),
            "engines": [{"saltops_alarms": {}}, {"saltops_tasks": {}}],
            "saltops": settings,
        }
        masters.append(saltops_master_factory(master_id, db_url=db_url, extra=extra))
    m1, m2 = masters
    for master in masters:
        kit.write_hooks_pillar(master.config["pillar_roots"]["base"][0], also=["saltops"])
    minions = []
    started = []
    try:
        m1.start(start_timeout=120)
        started.append(m1)
        share_master_keys(m1, m2)
        m2.start(start_timeout=120)
        started.append(m2)
        overrides = saltenv.minion_overrides({"master": master_addresses(masters)})
        for name in MINIONS:
            minion = m1.salt_minion_daemon(name, overrides=overrides)
            minion.start(start_timeout=120)
            started.append(minion)
            minions.append(minion)
        for master in masters:
            cli = master.salt_cli(timeout=120)
            # The minions answer through both masters, and have SaltOps' execution modules.
            assert wait_for(lambda: sorted(cli.run("test.ping", minion_tgt="*").data or {}) == sorted(MINIONS),
                            timeout=120), f"the minions do not answer {master.id}"
        ret = m1.salt_cli(timeout=120).run("saltutil.sync_modules", minion_tgt="*")
        assert ret.returncode == 0, ret
        yield {"masters": masters, "minions": minions, "store": store, "db_url": db_url, "base": base,
               "stack": stack, "ports": ports, "rules_file": rules_file}
    finally:
        for daemon in reversed(started):
            with contextlib.suppress(Exception):
                daemon.terminate()
        kit.stop_apps(str(base))
        shutil.rmtree(base, ignore_errors=True)
