"""A master running the saltops_alarms engine, one minion with a real diskusage beacon,
and local notification receivers.  Built on the shared factories of tests/conftest.py."""

import contextlib
import time

import pytest
import yaml

from saltops.lab import demo
from tests.support import saltenv
from tests.support.alarm_receivers import Receivers, SmtpReceiver, channel_config, free_port

MINION = "alarm-web01.lab.saltops"
WEBHOOK_TOKEN = "it-webhook-6b1d9e3f7a2c4058"

RULES = {
    "defaults": {"resolve_after": "2m"},
    "rules": [
        # The beacon's name is the tag segment; the pillar already configures `diskusage` (90 %)
        # for every host, so the test adds its own low-threshold one under another name.
        {"name": "DiskUsageHigh", "beacon": "alarm_test_disk", "field": "diskusage", "op": ">=", "threshold": 1,
         "key": ["mount"], "severity": "warning",
         "annotations": {"summary": "disk {mount} on {host} is {value:.0f}% full"}},
        {"name": "LoadHigh", "beacon": "load", "field": "1m", "threshold": 1000, "severity": "warning"},
    ],
    "route": {"receiver": "ops", "group_by": ["alertname", "idc"], "group_wait": "1s", "group_interval": "2s",
              "repeat_interval": "1h"},
    "receivers": {"ops": {"channels": ["hook", "wecom", "dingtalk", "mail"]}},
    # A host that is down mutes its own warnings, whichever source raised them.
    "inhibit_rules": [{"source_matchers": ['alertname="NodeDown"'], "target_matchers": ['severity="warning"'],
                       "equal": ["host"]}],
}


@pytest.fixture(scope="module")
def receivers():
    r = Receivers().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def smtp():
    s = SmtpReceiver().start()
    yield s
    s.stop()


@contextlib.contextmanager
def alarm_master(factory, salt_factories, root, master_id, minion_id, rules, beacon, channels, alarms=None,
                 states=None):
    """A master running the alarm engine on its own SQLite CMDB, and one minion (a CMDB host).

    ``beacon`` is ``{name: config list}``: a PillarStack layer of the test's own adds it beside
    the shipped pillar's beacons (beacons from pillar replace the minion config's ``beacons``
    entirely in Salt 3008: config.merge with omit_opts=True).  ``states`` (``{file name: text}``)
    go into the master's state tree before it starts.
    """
    from saltops import config
    from saltops.cmdb import api
    from saltops.paths import tree
    from saltops.saltconf import EXT_PILLAR
    from saltops.store import get_store

    rules_file = root / "rules.yml"
    rules_file.write_text(yaml.safe_dump(rules))
    db_url = f"sqlite:///{salt_factories.root_dir / (master_id + '.db')}"
    store = get_store(db_url)
    record = {**demo.HOSTS[0], "hostname": minion_id, "idc": "bj-idc1", "env": "prod", "roles": ["base", "web"]}
    api.add(store, config.load({}), "tester", record)
    port = free_port()
    stack = root / "stack"
    stack.mkdir()
    (stack / "stack.cfg").write_text("alarms.yml\n")
    (stack / "alarms.yml").write_text(yaml.safe_dump({"beacons": beacon}))
    extra = {
        "ext_pillar": [{EXT_PILLAR: {}}, {"stack": str(tree("pillar") / "stack" / "stack.cfg")},
                       {"stack": str(stack / "stack.cfg")}],
        "engines": [{"saltops_alarms": {}}],
        "saltops": {
            "alarms": {"rules_file": str(rules_file), "listen_port": port, "tick": 0.1,
                       "webhook_token": WEBHOOK_TOKEN, **(alarms or {})},
            "notify": {"channels": channels, "retry": {"backoff": "1s", "max_backoff": "5s"}},
        },
    }
    master = factory(master_id, db_url=db_url, extra=extra)
    for name, text in (states or {}).items():
        (master.state_tree.base.write_path / name).write_text(text)
    minion = master.salt_minion_daemon(minion_id, overrides=saltenv.minion_overrides())
    with master.started(start_timeout=120), minion.started(start_timeout=120):
        yield {"master": master, "minion": minion, "store": store, "port": port, "rules_file": rules_file,
               "db_url": db_url}


@pytest.fixture(scope="module")
def alarm_env(saltops_master_factory, salt_factories, receivers, smtp, tmp_path_factory):
    # The pillar already configures `diskusage` (90 %) for every host, so the test adds its own
    # low-threshold one under another name.
    beacon = {"alarm_test_disk": [{"beacon_module": "diskusage"}, {"/": "1%"}, {"interval": 2}]}
    with alarm_master(saltops_master_factory, salt_factories, tmp_path_factory.mktemp("alarms"), "alarms-master",
                      MINION, RULES, beacon, channel_config(receivers, smtp)) as env:
        yield env


def wait_for(cond, timeout=90, step=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(step)
    return None
