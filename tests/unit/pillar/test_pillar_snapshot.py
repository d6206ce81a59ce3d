"""The in-memory CMDB snapshot: records, backends index, incremental updates, the file."""

import os

import msgpack
import pytest

from saltops.pillar.snapshot import Snapshot, read_header
from tests.support.pillar_hosts import host

URL = "mysql+pymysql://saltops:***@db.example.com/saltops"


def _snap():
    return Snapshot.from_records(
        7,
        [
            host("web02.example.com", ip="10.1.0.12"),
            host("web01.example.com", ip="10.1.0.11"),
            host("web03.example.com", status="maintenance"),
            host("web09.example.com", env="staging"),
            host("db01.example.com", roles=["base", "db"]),
            host("lb01.example.com", roles=["base", "lb"]),
        ],
    )


def test_record_is_a_fresh_copy_each_time():
    snap = _snap()
    rec = snap.record("web01.example.com")
    assert rec["ip"] == "10.1.0.11" and rec["roles"] == ["base", "web"]
    assert "version" not in rec
    rec["apps"]["shop"]["port"] = 1
    rec["roles"].append("db")
    again = snap.record("web01.example.com")
    assert again["apps"]["shop"]["port"] == 8000 and again["roles"] == ["base", "web"]
    assert snap.record("nope.example.com") is None
    assert len(snap) == 6 and "db01.example.com" in snap


def test_backends_are_online_hosts_of_the_role_and_env_sorted():
    snap = _snap()
    backends = snap.backends("web", "prod")
    assert [b["hostname"] for b in backends] == ["web01.example.com", "web02.example.com"]
    assert set(backends[0]) == {"hostname", "ip", "lines", "idc", "apps"}
    assert [b["hostname"] for b in snap.backends("web", "staging")] == ["web09.example.com"]
    assert snap.backends("web", "dev") == []
    assert snap.backends("cache", "prod") == []
    # A new list each call (entries are shared, read-only).
    first, second = snap.backends("web", "prod"), snap.backends("web", "prod")
    assert first == second and first is not second
    first.clear()
    assert len(snap.backends("web", "prod")) == 2


def test_apply_updates_records_and_index():
    snap = _snap()
    assert len(snap.backends("web", "prod")) == 2
    changed = [
        host("web01.example.com", status="maintenance"),  # leaves the backends
        host("web03.example.com"),  # back online
        host("web04.example.com", ip="10.1.0.14"),  # new
    ]
    snap.apply(9, changed, purged=["web02.example.com", "never-there.example.com"])
    assert snap.version == 9
    assert [b["hostname"] for b in snap.backends("web", "prod")] == ["web03.example.com", "web04.example.com"]
    assert snap.record("web02.example.com") is None
    assert snap.record("web01.example.com")["status"] == "maintenance"
    # Moving a host to another env moves it between index entries.
    snap.apply(10, [host("web04.example.com", env="staging")], [])
    assert [b["hostname"] for b in snap.backends("web", "prod")] == ["web03.example.com"]
    assert [b["hostname"] for b in snap.backends("web", "staging")] == [
        "web04.example.com",
        "web09.example.com",
    ]
    # A host both purged and re-added in the window is kept (the row wins).
    snap.apply(11, [host("web03.example.com", ip="10.9.9.9")], ["web03.example.com"])
    assert snap.record("web03.example.com")["ip"] == "10.9.9.9"


def test_save_and_load_round_trip(tmp_path):
    path = str(tmp_path / "d" / "snap.msgpack")
    snap = _snap()
    header = snap.save(path, URL, now=123.0)
    assert header == {"format": 1, "version": 7, "saved_at": 123.0, "source": URL, "hosts": 6}
    assert read_header(path) == header
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert os.listdir(tmp_path / "d") == ["snap.msgpack"]  # no tmp file left behind
    loaded = Snapshot.load(path, URL)
    assert loaded.source == "file" and loaded.version == 7 and loaded.saved_at == 123.0
    assert loaded.record("web01.example.com") == snap.record("web01.example.com")
    assert loaded.backends("web", "prod") == snap.backends("web", "prod")


def test_load_refuses_foreign_corrupt_and_missing_files(tmp_path):
    path = str(tmp_path / "snap.msgpack")
    assert Snapshot.load(path, URL) is None
    _snap().save(path, URL)
    assert Snapshot.load(path, "mysql+pymysql://other@elsewhere/saltops") is None
    with open(path, "rb") as fh:
        data = fh.read()
    with open(path, "wb") as fh:
        fh.write(data[: len(data) // 2])
    assert Snapshot.load(path, URL) is None
    with open(path, "wb") as fh:
        fh.write(b"\xc1garbage")
    assert Snapshot.load(path, URL) is None
    assert read_header(path) is None
    with open(path, "wb") as fh:
        fh.write(msgpack.packb({"format": 99, "version": 1}) + msgpack.packb({}))
    assert Snapshot.load(path, URL) is None


@pytest.mark.parametrize("bad", [[], "x", None])
def test_load_refuses_a_body_that_is_not_a_mapping(tmp_path, bad):
    path = str(tmp_path / "snap.msgpack")
    with open(path, "wb") as fh:
        fh.write(msgpack.packb({"format": 1, "version": 3, "source": URL}) + msgpack.packb(bad))
    assert Snapshot.load(path, URL) is None


def test_only_the_served_roles_are_indexed_when_asked():
    records = [host("web01.example.com"), host("db01.example.com", roles=["base", "db"])]
    snap = Snapshot.from_records(3, records, roles={"web"})
    assert [b["hostname"] for b in snap.backends("web", "prod")] == ["web01.example.com"]
    assert set(snap.index) == {("web", "prod")}
    with pytest.raises(KeyError, match="not indexed"):
        snap.backends("db", "prod")
    snap.apply(4, [host("web02.example.com"), host("db02.example.com", roles=["db"])], [])
    assert set(snap.index) == {("web", "prod")} and len(snap.backends("web", "prod")) == 2
