"""Alerts from Alertmanager carry the `host` a beacon alarm of the same machine carries,
found through `host`, `hostname`, `nodename` or `instance` and the CMDB (name or address)."""

import pytest
from alarms_testkit import BASE_RULES

from saltops.alarms.evaluate import host_part, source_host
from saltops.alarms.labels import CmdbLabels, address_index
from saltops.alarms.matchers import parse_matchers
from saltops.alarms.silence import Silence
from saltops.pillar.snapshot import Snapshot

RECORDS = [
    {"hostname": "db01.example.com", "ip": "10.0.0.5", "lines": {"telecom": "203.0.113.5", "intranet": "10.0.0.5"},
     "roles": ["db"], "idc": "sh-idc1", "env": "prod", "status": "online", "owner": "dba"},
    {"hostname": "web01.example.com", "ip": "2001:db8::11", "lines": {"bgp": "2001:db8::11"},
     "roles": ["web"], "idc": "bj-idc1", "env": "prod", "status": "online", "owner": "web-team"},
    # Two hosts claiming one address: it names neither.
    {"hostname": "a.example.com", "ip": "10.9.9.9", "lines": {}, "roles": ["web"], "status": "online"},
    {"hostname": "b.example.com", "ip": "10.9.9.9", "lines": {}, "roles": ["web"], "status": "online"},
]


class FixedCache:
    """The one method CmdbLabels asks of the pillar's snapshot cache."""

    def __init__(self, snapshot):
        self.snapshot = snapshot

    def current(self):
        return self


@pytest.fixture
def cmdb():
    return CmdbLabels(FixedCache(Snapshot.from_records(7, RECORDS)))


@pytest.mark.parametrize("value, host", [
    ("db01:9100", "db01"),
    ("db01", "db01"),
    ("10.0.0.5:9100", "10.0.0.5"),
    ("[2001:db8::11]:9100", "2001:db8::11"),
    ("[2001:db8::11]", "2001:db8::11"),
    ("2001:db8::11", "2001:db8::11"),
    ("https://shop.example.com:8443/healthz", "shop.example.com"),
    ("  ", ""),
    ("[broken", ""),
])
def test_host_part_strips_ports_brackets_and_urls(value, host):
    assert host_part(value) == host


def test_source_host_takes_the_first_label_that_names_a_machine():
    assert source_host({"alertname": "X", "instance": "10.0.0.5:9100", "nodename": "db01"}) == "db01"
    assert source_host({"alertname": "X", "hostname": "web9", "instance": "x:1"}) == "web9"
    assert source_host({"alertname": "X", "host": "", "instance": "x:1"}) == "x"
    assert source_host({"alertname": "X", "job": "node"}) is None


def test_cmdb_resolves_names_and_line_addresses(cmdb):
    assert cmdb.resolve("db01.example.com") == "db01.example.com"
    assert cmdb.resolve("DB01.example.com") == "db01.example.com"
    assert cmdb.resolve("10.0.0.5") == "db01.example.com"
    assert cmdb.resolve("203.0.113.5") == "db01.example.com"  # a line's address
    assert cmdb.resolve("2001:DB8:0::11") == "web01.example.com"  # another spelling of the address
    assert cmdb.resolve("10.9.9.9") is None  # claimed by two hosts
    assert cmdb.resolve("192.0.2.1") is None
    assert cmdb.resolve("") is None


def test_the_address_index_follows_the_snapshot_version():
    snap = Snapshot.from_records(1, RECORDS[:1])
    labels = CmdbLabels(FixedCache(snap))
    assert labels.resolve("10.0.0.5") == "db01.example.com"
    moved = dict(RECORDS[0], ip="10.0.0.6", lines={"intranet": "10.0.0.6"})
    snap.apply(2, [moved], [])
    assert labels.resolve("10.0.0.5") is None and labels.resolve("10.0.0.6") == "db01.example.com"
    assert address_index(snap) == {"10.0.0.6": "db01.example.com"}


def node_alert(instance, alertname="NodeFilesystemFull", severity="warning", **extra):
    return {"status": "firing", "labels": {"alertname": alertname, "instance": instance, "job": "node",
                                            "severity": severity, **extra},
            "annotations": {"summary": alertname}, "startsAt": "2026-12-01T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z"}


def firing_hosts(batch):
    return sorted(a["labels"]["host"] for n in batch.notifications for a in n.payload["alerts"])


def test_prometheus_alert_by_ip_gets_the_cmdb_host_and_its_labels(make_pipeline, cmdb):
    p = make_pipeline(labels=cmdb)
    p.alertmanager({"version": "4", "status": "firing", "alerts": [
        node_alert("10.0.0.5:9100"), node_alert("[2001:db8::11]:9100"), node_alert("192.0.2.1:9100")]}, now=1000)
    p.tick(1000)
    by_instance = {a.labels["instance"]: a.labels for a in p.evaluator.alerts.values()}
    assert by_instance["10.0.0.5:9100"]["host"] == "db01.example.com"
    assert by_instance["10.0.0.5:9100"]["idc"] == "sh-idc1" and by_instance["10.0.0.5:9100"]["role"] == "db"
    assert by_instance["[2001:db8::11]:9100"]["host"] == "web01.example.com"
    # Unknown to the CMDB: the name as the source gave it, and no CMDB labels.
    assert by_instance["192.0.2.1:9100"]["host"] == "192.0.2.1" and "idc" not in by_instance["192.0.2.1:9100"]


def test_a_host_silence_mutes_beacon_and_prometheus_alarms_alike(make_pipeline, cmdb, clock):
    p = make_pipeline(labels=cmdb)
    p.silences.set([Silence("m1", "silence", parse_matchers(['host="db01.example.com"']), None, 0, 5000,
                            "alice", "maintenance")])
    p.event("salt/beacon/db01.example.com/load/", {"id": "db01.example.com", "1m": 9.0})
    p.event("salt/beacon/web01.example.com/load/", {"id": "web01.example.com", "1m": 9.0})
    p.alertmanager({"version": "4", "status": "firing", "alerts": [
        node_alert("10.0.0.5:9100"), node_alert("[2001:db8::11]:9100")]}, now=1000)
    p.tick(1000)
    sent = []
    for t in (1005, 1040, 1080):
        clock.now = t
        sent += firing_hosts(p.tick(t))
    # web01's load alarm and its Prometheus alert are sent; nothing about db01 from either source.
    assert sent and set(sent) == {"web01.example.com"}
    assert p.counters.muted["silence"] >= 2


def test_equal_host_inhibition_reaches_prometheus_alerts(make_pipeline, cmdb, clock):
    p = make_pipeline(text=BASE_RULES.replace('alertname="HostSilent"', 'alertname=~"HostSilent|NodeDown"'),
                      labels=cmdb)
    # NodeDown (critical) about db01 by its address mutes db01's warnings, from beacons and from Prometheus.
    p.alertmanager({"version": "4", "status": "firing", "alerts": [
        node_alert("10.0.0.5:9100", alertname="NodeDown", severity="critical"),
        node_alert("10.0.0.5:9100"), node_alert("web01.example.com:9100")]}, now=1000)
    p.event("salt/beacon/db01.example.com/load/", {"id": "db01.example.com", "1m": 9.0})
    p.tick(1000)
    sent = []
    for t in (1005, 1040):
        clock.now = t
        sent += [(a["labels"]["alertname"], a["labels"]["host"])
                 for n in p.tick(t).notifications for a in n.payload["alerts"]]
    assert sorted(sent) == [("NodeDown", "db01.example.com"), ("NodeFilesystemFull", "web01.example.com")]
    assert p.counters.muted["inhibit"] >= 2
