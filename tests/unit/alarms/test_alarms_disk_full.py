"""The whole alarm service on a disk that fills up mid-storm, then gets room again.

SQLite on a tmpfs of a few MiB (:mod:`tests.support.small_fs`).  The disk
fills while an SMS is being sent, so that SMS's outcome cannot be recorded,
and more alarms arrive while nothing can be written.  What must hold: no
notification is sent twice, no alarm is lost once there is room again, the
log says clearly what is wrong without a line per retry, and the pipeline
goes on by itself.
"""

import logging
import threading
import time

import pytest
import sqlalchemy as sa
import yaml

from saltops.alarms.schema import alarms, history
from saltops.alarms.service import AlarmService
from saltops.notify import queue as notify_queue
from saltops.store.engine import Store
from tests.support.alarm_receivers import Receivers, channel_config
from tests.support.small_fs import mount_or_skip, truncate_wal

RULES = {
    "rules": [{"name": "DiskFull", "beacon": "diskusage", "field": "diskusage", "threshold": 90, "key": ["mount"],
               "annotations": {"summary": "disk {mount} on {host} at {value}%"}}],
    "route": {"receiver": "ops", "group_by": ["alertname"], "group_wait": "0.2s", "group_interval": "0.5s",
              "repeat_interval": "1h"},
    "receivers": {"ops": {"channels": ["hook", "sms"], "max_alerts": 0}},
}


@pytest.fixture
def small_fs(tmp_path):
    fs = mount_or_skip(tmp_path / "small", size="6m")
    yield fs
    fs.free()
    fs.umount()


@pytest.fixture
def receivers():
    r = Receivers().start()
    yield r
    r.stop()


def wait_for(cond, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def beacons(svc, hosts):
    for host in hosts:
        svc.submit_event(f"salt/beacon/{host}/diskusage/", {"id": host, "diskusage": 97.0, "mount": "/"})


def announced(receivers):
    """Hosts named by the webhook notifications so far."""
    return {a["labels"]["host"] for g in receivers.of("hook") for a in g["body"]["alerts"]}


def test_a_full_disk_under_the_alarm_and_notify_outbox(small_fs, receivers, tmp_path, caplog):
    store = Store(f"sqlite:///{small_fs.path}/saltops.db")
    store.migrate()
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(RULES))
    conf = {"alarms": {"rules_file": str(rules), "listen_port": 0, "tick": 0.05, "cmdb_labels": False},
            "notify": {"channels": channel_config(receivers), "retry": {"backoff": "0.2s", "max_backoff": "1s"}}}
    svc = AlarmService(conf, store)
    # Quicker than the defaults, so that the test does not wait for a minute-long pause to end.
    svc.deliverer.poll_interval = 0.05
    svc.deliverer.max_store_pause = 0.5
    svc.start()
    loop = threading.Thread(target=svc.run, daemon=True)
    loop.start()
    caplog.set_level(logging.WARNING, logger="saltops")
    try:
        beacons(svc, ["web01", "web02", "web03"])
        assert wait_for(lambda: announced(receivers) == {"web01", "web02", "web03"})
        assert wait_for(lambda: _counts(store) == {"sent": 2})

        def disk_fills_while_an_sms_is_sent(kind, _query):
            if kind == "sms":
                receivers.on_request = None
                truncate_wal(store)
                small_fs.fill()

        receivers.on_request = disk_fills_while_an_sms_is_sent
        beacons(svc, ["web04", "web05"])
        assert wait_for(lambda: small_fs.full() and len(receivers.of("sms")) == 2)
        outage = time.monotonic()
        # Alarms keep coming while nothing can be written.
        beacons(svc, ["db01", "db02", "db03"])
        assert wait_for(lambda: svc.writer.failures >= 5 and svc.deliverer.store_log.failures >= 3)
        assert len(receivers.of("sms")) == 2  # the SMS whose outcome was refused is not sent again
        assert not {"db01", "db02", "db03"} & announced(receivers)  # not committed: not sent

        small_fs.free()
        assert wait_for(lambda: {"db01", "db02", "db03"} <= announced(receivers))
        assert wait_for(lambda: set(_counts(store)) == {"sent"} and not svc.deliverer.unrecorded()
                        and not svc.writer.busy())
        elapsed = time.monotonic() - outage
    finally:
        svc.stopping.set()
        loop.join(10)
        svc.stop()

    # No notification sent twice: one request per outbox row, each logged as one successful attempt.
    with store.connect() as conn:
        rows = conn.execute(sa.select(notify_queue.outbox.c.channel, notify_queue.outbox.c.attempts)).all()
        fired = {r.fingerprint for r in conn.execute(sa.select(alarms).where(alarms.c.state == "firing"))}
        firing_history = conn.execute(sa.select(sa.func.count()).select_from(history)
                                      .where(history.c.event == "firing")).scalar()
    for kind in ("hook", "sms"):
        assert len(receivers.of(kind)) == sum(1 for r in rows if r.channel == kind) == 3
    assert all(r.attempts == 1 for r in rows)
    # No alarm lost: all eight are firing on disk, each with its one transition.
    assert len(fired) == 8 and firing_history == 8
    hosts = {"web01", "web02", "web03", "web04", "web05", "db01", "db02", "db03"}
    assert announced(receivers) == hosts

    # Clear, and not a flood: one error line per component at once, then at most one a minute.
    for logger, what in (("saltops.alarms.writer", "alarm state not written"),
                         ("saltops.notify.worker", "notification outbox not written")):
        lines = [r for r in caplog.records if r.name == logger and r.getMessage().startswith(what)
                 and "works again" not in r.getMessage()]
        failures = svc.writer.failures if logger.endswith("writer") else svc.deliverer.store_log.failures
        assert 1 <= len(lines) <= 1 + elapsed // 60 < failures, (logger, len(lines), failures)
        assert lines[0].levelno == logging.ERROR
        assert "disk is full" in lines[0].getMessage() and f"{small_fs.path}/saltops.db" in lines[0].getMessage()
        assert any(r.name == logger and "works again" in r.getMessage() for r in caplog.records)
    store.dispose()


def _counts(store):
    with store.connect() as conn:
        return notify_queue.counts(conn)
