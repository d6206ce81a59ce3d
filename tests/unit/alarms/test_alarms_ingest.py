import os

import pytest

from saltops.alarms.ingest import AcceptedKeys, Ingest, Rejected, payload_size


def test_beacon_event_becomes_a_sample():
    ing = Ingest(clock=lambda: 5.0)
    sample = ing.check("salt/beacon/web01/diskusage/", {"id": "web01", "diskusage": 91.0, "mount": "/"})
    assert (sample.host, sample.kind, sample.name, sample.rest, sample.ts) == ("web01", "beacon", "diskusage", "", 5.0)
    svc = ing.check("salt/beacon/web01/service/nginx", {"id": "web01", "nginx": {"running": False}})
    assert svc.name == "service" and svc.rest == "nginx"


@pytest.mark.parametrize(
    "tag,data,reason",
    [
        ("salt/beacon/web01/diskusage/", {"id": "db01", "diskusage": 99}, "id_mismatch"),
        ("salt/beacon/web01/diskusage/", {"diskusage": 99}, "bad_id"),
        ("salt/beacon/web01/diskusage/", {"id": 7, "diskusage": 99}, "bad_id"),
        ("salt/beacon/../diskusage/", {"id": "..", "diskusage": 99}, "bad_id"),
        ("salt/beacon/web01/diskusage/", [1, 2, 3], "not_a_mapping"),
        ("salt/beacon/web01/diskusage/", "garbage", "not_a_mapping"),
        ("salt/beacon/web01/diskusage/", {"id": "web01", "blob": "x" * 70000}, "too_large"),
        ("salt/beacon/web01/diskusage/", {"id": "web01", "l": list(range(5000))}, "too_large"),
        ("salt/beacon//diskusage/", {"id": "web01"}, "bad_tag"),
        ("salt/beacon/web01", {"id": "web01"}, "bad_tag"),
        ("salt/job/1/ret/web01", {"id": "db01"}, "id_mismatch"),
        (b"salt/beacon/x/y/", {}, "bad_tag"),
    ],
)
def test_forged_and_malformed_events_are_rejected(tag, data, reason):
    with pytest.raises(Rejected) as err:
        Ingest().check(tag, data)
    assert err.value.reason == reason


def test_deep_nesting_is_refused_cheaply():
    data = {"id": "web01"}
    cur = data
    for _ in range(50):
        cur["x"] = {}
        cur = cur["x"]
    with pytest.raises(Rejected, match="nested deeper"):
        payload_size(data, 65536, 2000, 8)


def test_unwatched_events_are_ignored():
    ing = Ingest()
    assert ing.check("salt/auth", {"id": "web01"}) is None
    assert ing.check("saltops/cmdb/changed", {}) is None
    assert ing.check("myapp/whatever", {"id": "web01"}) is None


def test_signs_of_life_and_tag_rules():
    from alarms_testkit import make_ruleset

    text = """
rules:
  - {name: AppError, event: tag, tag: "myapp/*/error", field: data.code, op: ">=", threshold: 500}
route: {receiver: ops}
receivers: {ops: {channels: [hook]}}
"""
    rs = make_ruleset(text)
    ing = Ingest(rs.by_tag)
    assert ing.check("salt/job/2024/ret/web01", {"id": "web01"}).kind == "seen"
    assert ing.check("salt/minion/web01/start", {"id": "web01"}).kind == "seen"
    sample = ing.check("myapp/shop/error", {"id": "web01", "data": {"code": 502}})
    assert sample.kind == "tag" and sample.host == "web01"
    with pytest.raises(Rejected):
        ing.check("myapp/shop/error", {"data": {"code": 502}})


def test_accepted_keys(tmp_path):
    (tmp_path / "minions").mkdir()
    (tmp_path / "minions" / "web01").write_text("key")
    now = [0.0]
    keys = AcceptedKeys(str(tmp_path), ttl=5, clock=lambda: now[0])
    ing = Ingest(accepted=keys)
    assert ing.check("salt/beacon/web01/load/", {"id": "web01", "1m": 1}).host == "web01"
    with pytest.raises(Rejected) as err:
        ing.check("salt/beacon/ghost/load/", {"id": "ghost", "1m": 1})
    assert err.value.reason == "unknown_minion"
    # A key accepted later is seen after a second, without waiting for the ttl.
    (tmp_path / "minions" / "ghost").write_text("key")
    now[0] = 1.5
    assert ing.check("salt/beacon/ghost/load/", {"id": "ghost", "1m": 1}).host == "ghost"
    os.remove(tmp_path / "minions" / "ghost")
    now[0] = 10
    with pytest.raises(Rejected):
        ing.check("salt/beacon/ghost/load/", {"id": "ghost", "1m": 1})


def test_a_beacon_forwarded_by_a_syndic_counts_once():
    # A syndic forwards each of its minions' events to the master of masters, which fires it
    # twice: under syndic/<syndic id>/ and under the original tag (salt/daemons/masterapi.py).
    ing = Ingest(clock=lambda: 5.0)
    data = {"id": "web01", "diskusage": 91.0, "mount": "/"}
    assert ing.check("syndic/syn-idc1/salt/beacon/web01/diskusage/", data) is None
    assert ing.check("salt/beacon/web01/diskusage/", data).host == "web01"
