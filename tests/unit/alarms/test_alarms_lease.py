"""Several masters' engines on one database: one evaluates (the lease holder), a standby takes over
when it dies, and every alarm is announced once (real store, real HTTP receiver)."""

import collections
import threading
import time

import pytest
import yaml

from saltops.alarms import settings
from saltops.alarms.lease import Lease, LeaseLost
from saltops.alarms.service import AlarmService
from saltops.errors import ValidationError
from saltops.store.engine import Store
from tests.support.alarm_receivers import Receivers, channel_config

RULES = {
    "rules": [{"name": "DiskFull", "beacon": "diskusage", "field": "diskusage", "threshold": 90, "key": ["mount"]}],
    "route": {"receiver": "ops", "group_by": ["alertname", "host"], "group_wait": "0.2s", "group_interval": "1s",
              "repeat_interval": "1h"},
    "receivers": {"ops": {"channels": ["hook"]}},
}


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_one_holder_at_a_time_and_a_takeover_only_after_the_end(store):
    clock = Clock()
    a = Lease(store, 9, holder="m1", clock=clock)
    b = Lease(store, 9, holder="m2", clock=clock)
    assert a.held() is True
    assert b.held() is False
    assert a.state()[0] == "m1"
    # m1 renews every third of the lease; m2 keeps waiting.
    for _ in range(5):
        clock.now += 3
        assert a.held() is True and b.held() is False
    # m1 stops renewing (its master died): m2 takes over only after the end.
    last_renewal = clock.now
    clock.now = last_renewal + 6
    assert b.held() is False
    clock.now = last_renewal + 9.5
    assert b.held() is True
    assert b.state()[0] == "m2"
    clock.now += 3
    assert a.held() is False and b.held() is True


def test_a_write_of_an_engine_that_lost_the_lease_is_refused(store):
    clock = Clock()
    a = Lease(store, 9, holder="m1", clock=clock)
    b = Lease(store, 9, holder="m2", clock=clock)
    assert a.held() and not b.held()
    with store.begin() as conn:
        a.fence(conn)  # the holder's write renews the lease
    clock.now += 10  # m1 could not reach the database for longer than the lease
    assert b.held() is True
    with pytest.raises(LeaseLost), store.begin() as conn:
        a.fence(conn)
    assert a.held() is False  # and it knows it is on standby now
    with store.begin() as conn:
        b.fence(conn)


def test_a_database_that_does_not_answer_changes_nothing(tmp_path):
    clock = Clock()
    # No alarm_leases table: every lease query fails.
    lone = Lease(Store(f"sqlite:///{tmp_path}/empty.db"), 9, holder="m1", clock=clock)
    assert lone.held() is True  # a lone master keeps evaluating; its writes wait anyway
    lone.mode = False
    clock.now += 3
    assert lone.held() is False  # a standby stays on standby


def test_a_clean_stop_hands_over_at_the_next_try(store):
    clock = Clock()
    a = Lease(store, 9, holder="m1", clock=clock)
    b = Lease(store, 9, holder="m2", clock=clock)
    assert a.held() and not b.held()
    a.release()
    clock.now += 3
    assert b.held() is True
    assert a.held() is False


def test_the_lease_setting_is_checked():
    for bad in (0, "15s", True, 1.0):
        with pytest.raises(ValidationError) as err:
            settings.load({"alarms": {"lease": bad, "tick": 0.2}})
        assert any("saltops:alarms:lease" in p for p in err.value.problems), bad
    assert settings.load({"alarms": {"lease": 5}})[0]["lease"] == 5


@pytest.fixture
def receivers():
    r = Receivers().start()
    yield r
    r.stop()


@pytest.fixture
def engines(store, receivers, tmp_path):
    """``make(holder)`` -> a running AlarmService on the shared store, as one master's engine."""
    made = []
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(RULES))

    def make(holder):
        conf = {"alarms": {"rules_file": str(path), "listen_port": 0, "tick": 0.05, "lease": 1.5,
                           "cmdb_labels": False},
                "notify": {"channels": channel_config(receivers), "retry": {"backoff": "0.2s", "max_backoff": "1s"}}}
        svc = AlarmService(conf, store, holder=holder)
        svc.start()
        svc.thread = threading.Thread(target=svc.run, daemon=True)
        svc.thread.start()
        made.append(svc)
        return svc

    yield make
    for svc in made:
        if not svc.stopping.is_set():
            svc.stopping.set()
            svc.thread.join(10)
            svc.stop()


def storm(engines, hosts):
    """Every master receives every beacon event (minions connected to all masters)."""
    for name in hosts:
        for svc in engines:
            svc.submit_event(f"salt/beacon/{name}/diskusage/", {"id": name, "diskusage": 97.0, "mount": "/"})


def announced(receivers):
    return collections.Counter(a["labels"]["host"] for g in receivers.of("hook") for a in g["body"]["alerts"])


def wait_for(cond, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def die(svc):
    """The master of ``svc`` dies: its threads stop, nothing is released or flushed."""
    svc.stopping.set()
    svc.thread.join(10)
    svc.deliverer.stop()
    svc.writer.stop()


def test_two_engines_announce_each_alarm_once_and_the_standby_carries_on(engines, receivers):
    m1, m2 = engines("m1"), engines("m2")
    assert wait_for(lambda: {m1.active, m2.active} == {True, False})
    active, standby = (m1, m2) if m1.active else (m2, m1)
    first = [f"a{i:02d}" for i in range(10)]
    storm([m1, m2], first)
    assert wait_for(lambda: set(announced(receivers)) == set(first))

    die(active)
    second = [f"b{i:02d}" for i in range(10)]
    # The storm goes on; only the survivor reads it.  It takes over once the lease ran out.
    assert wait_for(lambda: (storm([standby], second), standby.active)[1], timeout=30)
    assert wait_for(lambda: set(announced(receivers)) == set(first) | set(second))
    # Nothing lost, nothing twice: the survivor restored what the dead engine had sent.
    storm([standby], first + second)
    receivers.settle(3)  # three group intervals with nothing new: a duplicate would have been sent
    counts = announced(receivers)
    assert set(counts) == set(first) | set(second)
    assert set(counts.values()) == {1}, counts
