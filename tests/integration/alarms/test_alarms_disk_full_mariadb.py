"""The alarm service on MariaDB whose data directory runs out of space, then gets room again.

A private ``mariadbd`` (tests/support/mariadb_instance.py) keeps its data on a
tmpfs of 200 MiB mounted by the test.  When the disk is full InnoDB cannot
extend a table and answers 1114 "The table ... is full" (its error log says
"failed with error 28"); writes that fit in pages already allocated still
succeed, so the test raises alarms until the write-behind is refused.  What
must hold: each notification is sent once, every alarm is on disk once there
is room, the log names the server and says the disk is full, without a line
per retry.
"""

import logging
import threading
import time

import pytest
import sqlalchemy as sa
import yaml

from saltops.alarms.schema import alarms
from saltops.alarms.service import AlarmService
from saltops.notify import queue as notify_queue
from saltops.store.engine import Store
from tests.support import mariadb_instance
from tests.support.alarm_receivers import Receivers, channel_config
from tests.support.small_fs import mount_or_skip

RULES = {
    "rules": [{"name": "DiskFull", "beacon": "diskusage", "field": "diskusage", "threshold": 90, "key": ["mount"],
               "annotations": {"summary": "disk {mount} on {host} at {value}%"}}],
    "route": {"receiver": "ops", "group_by": ["alertname"], "group_wait": "0.2s", "group_interval": "0.5s",
              "repeat_interval": "1h"},
    "receivers": {"ops": {"channels": ["hook", "sms"], "max_alerts": 0}},
}


@pytest.fixture
def mariadb_on_small_disk(tmp_path):
    problem = mariadb_instance.available()
    if problem:
        pytest.skip(problem)
    fs = mount_or_skip(tmp_path / "small", size="200m")
    db = mariadb_instance.MariaDBInstance(base_dir=fs.path, buffer_pool="32M")
    try:
        db.start()
        yield db, fs
    finally:
        db.kill()
        fs.free()
        fs.umount()


@pytest.fixture
def receivers():
    r = Receivers().start()
    yield r
    r.stop()


def wait_for(cond, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def announced(receivers):
    return {a["labels"]["host"] for g in receivers.of("hook") for a in g["body"]["alerts"]}


def test_mariadb_out_of_space_under_the_alarm_and_notify_outbox(mariadb_on_small_disk, receivers, tmp_path, caplog):
    db, fs = mariadb_on_small_disk
    store = Store(db.url("saltops"))
    store.migrate()
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(RULES))
    conf = {"alarms": {"rules_file": str(rules), "listen_port": 0, "tick": 0.05, "cmdb_labels": False},
            "notify": {"channels": channel_config(receivers), "retry": {"backoff": "0.2s", "max_backoff": "1s"}}}
    svc = AlarmService(conf, store)
    svc.deliverer.poll_interval = 0.05
    svc.deliverer.max_store_pause = 0.5
    svc.start()
    loop = threading.Thread(target=svc.run, daemon=True)
    loop.start()
    caplog.set_level(logging.WARNING, logger="saltops")
    hosts = []
    try:
        fs.fill()
        # Raise alarms (each with long labels, so rows need new pages) until a write is refused.
        for batch in range(200):
            names = [f"h{batch:03d}-{i:03d}" for i in range(50)]
            hosts += names
            for host in names:
                svc.submit_event(f"salt/beacon/{host}/diskusage/",
                                 {"id": host, "diskusage": 97.0, "mount": "/" + "m" * 200})
            if wait_for(lambda: svc.writer.failures > 0, timeout=0.5):
                break
        assert svc.writer.failures > 0, "the full disk never refused a write"
        outage = time.monotonic()
        assert wait_for(lambda: svc.writer.failures >= 5)
        fs.free()
        assert wait_for(lambda: announced(receivers) == set(hosts))
        assert wait_for(lambda: set(_counts(store)) == {"sent"} and not svc.deliverer.unrecorded()
                        and not svc.writer.busy())
        elapsed = time.monotonic() - outage
    finally:
        svc.stopping.set()
        loop.join(10)
        svc.stop()

    with store.connect() as conn:
        rows = conn.execute(sa.select(notify_queue.outbox.c.channel, notify_queue.outbox.c.attempts)).all()
        firing = conn.execute(sa.select(sa.func.count()).select_from(alarms).where(alarms.c.state == "firing")).scalar()
    assert firing == len(hosts)  # no alarm lost
    for kind in ("hook", "sms"):  # no notification sent twice
        assert len(receivers.of(kind)) == sum(1 for r in rows if r.channel == kind) >= 1
    assert all(r.attempts == 1 for r in rows)
    lines = [r for r in caplog.records if r.name == "saltops.alarms.writer"
             and r.getMessage().startswith("alarm state not written") and "works again" not in r.getMessage()]
    assert 1 <= len(lines) <= 1 + elapsed // 60 < svc.writer.failures
    assert lines[0].levelno == logging.ERROR
    assert "disk is full" in lines[0].getMessage() and "is full" in lines[0].getMessage()
    assert f"database server 127.0.0.1:{db.port}" in lines[0].getMessage()
    store.dispose()


def _counts(store):
    with store.connect() as conn:
        return notify_queue.counts(conn)
