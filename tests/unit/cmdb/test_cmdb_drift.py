"""Drift between the CMDB and what Salt sees (pure comparison; the runner feeds it live data)."""

from saltops.cmdb import drift
from saltops.cmdb.model import validate_host
from tests.support.cmdb_kit import RULES, host


def records():
    return [
        validate_host(host("web01.x.com", ip="10.0.0.1"), RULES),
        validate_host(host("web02.x.com", ip="10.0.0.2"), RULES),
        validate_host(host("web03.x.com", ip="10.0.0.3"), RULES),
        validate_host(host("db01.x.com", ip="10.0.0.4", platform="CentOS-7"), RULES),
        validate_host(host("v6.x.com", ip="2001:db8::1"), RULES),
        validate_host(host("maint.x.com", ip="10.0.0.5", status="maintenance"), RULES),
        validate_host(host("old.x.com", ip="10.0.0.6", status="decommissioned"), RULES),
        validate_host(host("new.x.com", ip="10.0.0.7"), RULES),
        validate_host(host("gone.x.com", ip="10.0.0.8"), RULES),
    ]


KEYS = {
    "accepted": [
        "web01.x.com",
        "web02.x.com",
        "web03.x.com",
        "db01.x.com",
        "v6.x.com",
        "maint.x.com",
        "old.x.com",
        "rogue.x.com",
    ],
    "pending": ["new.x.com"],
    "rejected": [],
    "denied": [],
}
GOOD = {"ipv4": ["127.0.0.1", "10.0.0.1"], "ipv6": ["::1"], "osfinger": "Debian-12"}


def test_targets_to_probe_skips_decommissioned_and_keyless_hosts():
    assert drift.targets_to_probe(records(), KEYS["accepted"]) == [
        "db01.x.com",
        "maint.x.com",
        "v6.x.com",
        "web01.x.com",
        "web02.x.com",
        "web03.x.com",
    ]


def test_every_kind_of_drift_is_reported():
    answers = {
        "web01.x.com": GOOD,
        "web02.x.com": {"ipv4": ["10.9.9.9"], "ipv6": [], "osfinger": "Debian-12"},
        "db01.x.com": {"ipv4": ["10.0.0.4"], "ipv6": [], "osfinger": "Rocky-9"},
        "v6.x.com": {"ipv4": ["10.1.1.1"], "ipv6": ["2001:DB8:0::1"], "osfinger": "Debian-12"},
        # maint.x.com does not answer: not reported, it is in maintenance.
    }
    report = drift.compare(records(), KEYS, answers, drift.targets_to_probe(records(), KEYS["accepted"]))
    assert report["unknown_minions"] == ["rogue.x.com"]
    assert report["missing_key"] == [
        {"hostname": "gone.x.com", "key": "none"},
        {"hostname": "new.x.com", "key": "pending"},
    ]
    assert report["not_responding"] == ["web03.x.com"]
    assert report["decommissioned_with_key"] == ["old.x.com"]
    assert report["ip_mismatch"] == [{"hostname": "web02.x.com", "cmdb": "10.0.0.2", "grains": ["10.9.9.9"]}]
    assert report["os_mismatch"] == [{"hostname": "db01.x.com", "cmdb": "CentOS-7", "grains": "Rocky-9"}]
    assert report["bad_answers"] == []
    assert report["clean"] is False
    assert report["summary"]["probed"] == 6 and report["summary"]["answered"] == 4


def test_a_matching_cmdb_is_clean():
    recs = [validate_host(host("web01.x.com", ip="10.0.0.1"), RULES)]
    report = drift.compare(recs, {"accepted": ["web01.x.com"]}, {"web01.x.com": GOOD}, ["web01.x.com"])
    assert report["clean"] is True
    assert report["summary"]["hosts"] == 1 and report["summary"]["answered"] == 1


def test_garbage_answers_are_reported_not_compared():
    recs = [validate_host(host(f"h{i}.x.com", ip=f"10.0.0.{i}"), RULES) for i in range(1, 5)]
    names = [r["hostname"] for r in recs]
    answers = {
        "h1.x.com": "'grains.item' is not available.",
        "h2.x.com": {"ipv4": "10.0.0.2", "osfinger": "Debian-12"},
        "h3.x.com": {"ipv4": ["10.0.0.3"], "osfinger": ["Debian-12"]},
        "h4.x.com": {"ipv4": ["10.0.0.4", "not an ip"], "ipv6": [], "osfinger": "Debian-12"},
    }
    report = drift.compare(recs, {"accepted": names}, answers, names)
    assert [b["hostname"] for b in report["bad_answers"]] == ["h1.x.com", "h2.x.com", "h3.x.com"]
    assert report["ip_mismatch"] == [] and report["os_mismatch"] == []
