"""The pillar keys built from a snapshot (docs/pillar.md)."""

from saltops.pillar.build import build
from saltops.pillar.cache import View
from saltops.pillar.snapshot import Snapshot
from tests.support.pillar_hosts import host

LB_SERVES = {"lb": "web", "dblb": "db"}


def _view(stale=False, since=None):
    snap = Snapshot.from_records(
        42,
        [
            host("web01.example.com", ip="10.1.0.11"),
            host("web02.example.com", ip="10.1.0.12", status="offline"),
            host("web03.example.com", ip="10.1.0.13", env="staging"),
            host("db01.example.com", roles=["db"], ip="10.1.0.21"),
            host("lb01.example.com", roles=["base", "lb"], ip="10.1.0.1"),
            host("lb02.example.com", roles=["dblb", "lb"], env="staging", ip="10.1.0.2"),
            host("old.example.com", status="decommissioned"),
        ],
    )
    return View(snap, stale, since)


def test_known_host_gets_its_record_version_and_flags():
    out = build("web01.example.com", _view(), LB_SERVES)
    assert set(out) == {"cmdb"}
    assert out["cmdb"] == {
        "known": True,
        "hostname": "web01.example.com",
        "ip": "10.1.0.11",
        "lines": {"telecom": "203.0.113.1"},
        "roles": ["base", "web"],
        "platform": "Debian-12",
        "machine_type": "vm",
        "idc": "bj-idc1",
        "env": "prod",
        "status": "online",
        "owner": "web-team",
        "apps": {"shop": {"port": 8000, "health_url": "/healthz"}},
        "version": 42,
        "stale": False,
        "stale_since": None,
    }


def test_unknown_minion_gets_an_explicit_marker_not_an_empty_dict():
    out = build("stranger.example.com", _view(), LB_SERVES)
    assert out == {
        "cmdb": {
            "known": False,
            "hostname": "stranger.example.com",
            "status": "unknown",
            "roles": [],
            "reason": "minion id is not a CMDB hostname",
            "version": 42,
            "stale": False,
            "stale_since": None,
        }
    }
    # Minion ids are matched exactly: no case folding into another host's record.
    assert build("WEB01.example.com", _view(), LB_SERVES)["cmdb"]["known"] is False


def test_balancer_gets_online_backends_of_the_served_role_in_its_env():
    out = build("lb01.example.com", _view(), LB_SERVES)
    assert out["cmdb"]["roles"] == ["base", "lb"]
    assert out["cmdb_lb"] == {
        "lb": {
            "serves": "web",
            "env": "prod",
            "backends": [
                {
                    "hostname": "web01.example.com",
                    "ip": "10.1.0.11",
                    "lines": {"telecom": "203.0.113.1"},
                    "idc": "bj-idc1",
                    # What haproxy needs of the app, nothing else of its settings.
                    "apps": {"shop": {"health_url": "/healthz"}},
                }
            ],
        }
    }


def test_a_balancer_sees_no_app_setting_haproxy_does_not_use():
    shop = {
        "port": 8000,
        "health_url": "/ready",
        "server_name": "shop.example.com",
        "slots": {"blue": {"port": 8101}, "green": {"port": 8102}},
        "pre_hook": "migrate",
        "env": {"DB_PASSWORD": "sdb://vault/shop/db"},
        "base": "/srv/shop",
    }
    snap = Snapshot.from_records(
        3, [host("web01.example.com", apps={"shop": shop}), host("lb01.example.com", roles=["base", "lb"])]
    )
    (backend,) = build("lb01.example.com", View(snap, False, None), LB_SERVES)["cmdb_lb"]["lb"]["backends"]
    assert backend["apps"] == {
        "shop": {"health_url": "/ready", "server_name": "shop.example.com", "slots": shop["slots"]}
    }
    # The app's own host still gets all of it.
    assert build("web01.example.com", View(snap, False, None), LB_SERVES)["cmdb"]["apps"]["shop"] == shop


def test_a_host_with_two_balancer_roles_gets_both():
    out = build("lb02.example.com", _view(), LB_SERVES)
    assert set(out["cmdb_lb"]) == {"lb", "dblb"}
    assert [b["hostname"] for b in out["cmdb_lb"]["lb"]["backends"]] == ["web03.example.com"]
    assert out["cmdb_lb"]["dblb"]["backends"] == []  # no db host in staging
    assert out["cmdb_lb"]["dblb"]["serves"] == "db"


def test_non_balancers_get_no_cmdb_lb_and_status_is_passed_through():
    assert "cmdb_lb" not in build("db01.example.com", _view(), LB_SERVES)
    assert build("old.example.com", _view(), LB_SERVES)["cmdb"]["status"] == "decommissioned"
    assert "cmdb_lb" not in build("lb01.example.com", _view(), {})


def test_stale_view_is_flagged_with_its_start_time():
    out = build("web01.example.com", _view(stale=True, since=1_800_000_000), LB_SERVES)
    assert out["cmdb"]["stale"] is True
    assert out["cmdb"]["stale_since"] == "2027-01-15T08:00:00Z"
    unknown = build("nope.example.com", _view(stale=True, since=1_800_000_000), LB_SERVES)
    assert unknown["cmdb"]["stale"] is True and unknown["cmdb"]["known"] is False


def test_rendered_pillars_do_not_share_mutable_record_data():
    view = _view()
    first = build("lb01.example.com", view, LB_SERVES)
    first["cmdb"]["roles"].append("db")
    first["cmdb_lb"]["lb"]["backends"].clear()
    second = build("lb01.example.com", view, LB_SERVES)
    assert second["cmdb"]["roles"] == ["base", "lb"]
    assert len(second["cmdb_lb"]["lb"]["backends"]) == 1
