"""Which balancers `cmdb.refresh` applies a state on after a CMDB change, and with which state.

The plan is read from the audit log and the CMDB only (``api.refresh_plan``);
these tests write real changes to SQLite and MariaDB and check the plan, and
the ``saltops:cmdb:balancer_states`` setting's checks.
"""

import pytest

from saltops import config
from saltops.cmdb import api
from saltops.errors import ConfigError, NotFound, ValidationError
from tests.support.cmdb_kit import CONF, host


def conf_with(**cmdb):
    return config.load({"cachedir": "/nonexistent", "saltops": {"db_url": "sqlite://", "cmdb": cmdb}})


def seed(store, conf=CONF):
    for rec in (
        host("web01.x.com", ip="10.0.0.11"),
        host("web02.x.com", ip="10.0.0.12"),
        host("webst.x.com", ip="10.0.1.11", env="staging"),
        host("lb01.x.com", ip="10.0.0.2", roles=["base", "lb"]),
        host("lb02.x.com", ip="10.0.0.3", roles=["base", "lb"], status="maintenance"),
        host("lboff.x.com", ip="10.0.0.4", roles=["base", "lb"], status="offline"),
        host("lbgone.x.com", ip="10.0.0.5", roles=["base", "lb"], status="decommissioned"),
        host("lbst.x.com", ip="10.0.1.2", roles=["base", "lb"], env="staging"),
        host("db01.x.com", ip="10.0.0.21", roles=["base", "db"]),
    ):
        api.add(store, conf, "alice", rec)


def plan_of(store, change, conf=CONF):
    return api.refresh_plan(store, conf, change["version"])


def test_a_web_host_in_maintenance_applies_lb_on_the_running_balancers_of_its_env(store):
    seed(store)
    plan = plan_of(store, api.update(store, CONF, "bob", "web01.x.com", {"status": "maintenance"}))
    assert plan["hosts"] == ["web01.x.com"]
    # The refresh targets are what they were: every balancer of the env.
    assert plan["balancers"] == ["lb01.x.com", "lb02.x.com", "lbgone.x.com", "lboff.x.com"]
    # The state goes only to balancers that run: online or in maintenance.
    assert plan["apply"] == {"lb01.x.com": ["lb"], "lb02.x.com": ["lb"]}
    assert plan["skipped"] == {
        "lbgone.x.com": "status decommissioned in the CMDB",
        "lboff.x.com": "status offline in the CMDB",
    }
    assert plan["all"] is False


def test_adding_and_purging_a_web_host_apply_lb(store):
    seed(store)
    added = api.add(store, CONF, "bob", host("web03.x.com", ip="10.0.0.13"))
    assert set(plan_of(store, added)["apply"]) == {"lb01.x.com", "lb02.x.com"}
    purged = api.remove(store, CONF, "bob", "web03.x.com", purge=True)
    assert set(plan_of(store, purged)["apply"]) == {"lb01.x.com", "lb02.x.com"}


def test_a_web_host_moved_between_envs_touches_both_envs_balancers(store):
    seed(store)
    moved = api.update(store, CONF, "bob", "web02.x.com", {"env": "staging"})
    assert plan_of(store, moved)["apply"] == {
        "lb01.x.com": ["lb"],
        "lb02.x.com": ["lb"],
        "lbst.x.com": ["lb"],
    }


def test_changes_that_leave_backends_alone_apply_nothing(store):
    seed(store)
    for change in (
        api.update(store, CONF, "bob", "lb01.x.com", {"owner": "net-team"}),  # a balancer's own record
        api.update(store, CONF, "bob", "db01.x.com", {"status": "maintenance"}),  # not a served role
    ):
        plan = plan_of(store, change)
        assert plan["apply"] == {} and plan["skipped"] == {} and plan["balancers"] == []


def test_a_balancer_role_without_a_state_is_refreshed_only(store):
    conf = conf_with(
        roles=["base", "web", "lb", "db", "api", "lbapi"],
        lb_serves={"lbapi": "api"},
        balancer_states={"lbapi": None},
    )
    seed(store, conf)
    api.add(store, conf, "alice", host("api01.x.com", ip="10.0.0.31", roles=["api"]))
    api.add(store, conf, "alice", host("gw01.x.com", ip="10.0.0.41", roles=["lb", "lbapi"]))
    api.add(store, conf, "alice", host("gw02.x.com", ip="10.0.0.42", roles=["lbapi"]))

    plan = plan_of(store, api.update(store, conf, "bob", "api01.x.com", {"status": "offline"}), conf)
    # gw01 and gw02 are refreshed (their backends changed) but get no state.
    assert set(plan["balancers"]) >= {"gw01.x.com", "gw02.x.com"}
    assert plan["apply"] == {}
    assert set(plan["skipped"]) == {"gw01.x.com", "gw02.x.com"}
    assert "no saltops:cmdb:balancer_states entry for its role lbapi" in plan["skipped"]["gw02.x.com"]

    # A web change concerns gw01's lb role only: it gets `lb`, gw02 is not concerned.
    plan = plan_of(store, api.update(store, conf, "bob", "web01.x.com", {"status": "offline"}), conf)
    assert plan["apply"]["gw01.x.com"] == ["lb"]
    assert "gw02.x.com" not in plan["apply"] and "gw02.x.com" not in plan["skipped"]


def test_two_balancer_roles_of_one_host_get_both_states(store):
    conf = conf_with(
        roles=["base", "web", "lb", "db", "api", "lbapi"],
        lb_serves={"lbapi": "web"},
        balancer_states={"lbapi": "lbapi.config"},
    )
    api.add(store, conf, "alice", host("web01.x.com"))
    api.add(store, conf, "alice", host("gw01.x.com", ip="10.0.0.41", roles=["lb", "lbapi"]))
    plan = plan_of(store, api.update(store, conf, "bob", "web01.x.com", {"owner": "shop"}), conf)
    assert plan["apply"] == {"gw01.x.com": ["lb", "lbapi.config"]}


def test_the_plan_takes_nothing_but_a_real_version(store):
    seed(store)
    change = api.update(store, CONF, "bob", "web01.x.com", {"owner": "x"})
    with pytest.raises(NotFound, match="does not exist yet"):
        api.refresh_plan(store, CONF, change["version"] + 1)
    for bad in ("0", "-1", "lb01.x.com", True, None, "1.5", "1 OR 1=1"):
        with pytest.raises(ValidationError):
            api.refresh_plan(store, CONF, bad)


def test_balancer_plan_is_a_pure_function_of_rows():
    rows = [
        ("a", "online", "prod", "lb"),
        ("a", "online", "prod", "edge"),
        ("b", "online", "dev", "lb"),
        ("c", "offline", "prod", "lb"),
    ]
    serves = {"lb": "web", "edge": "web"}
    plan = api.balancer_plan(rows, {("web", "prod")}, serves, {"lb": "lb", "edge": "edge"})
    assert plan == {"apply": {"a": ["edge", "lb"]}, "skipped": {"c": "status offline in the CMDB"}}
    assert api.served_changes(
        [(None, {"roles": ["web"], "env": "dev"}), ({"roles": ["db"]}, None)], {"web"}
    ) == {("web", "dev")}


@pytest.mark.parametrize(
    "states, message",
    [
        (["lb"], "must map a balancer role"),
        ({"web": "lb"}, "'web' is not a balancer role"),
        ({"lb": "lb; rm -rf /"}, "must be an SLS name"),
        ({"lb": ["lb"]}, "must be an SLS name"),
        ({"lb": "lb..config"}, "must be an SLS name"),
    ],
)
def test_bad_balancer_states_are_refused(states, message):
    with pytest.raises(ConfigError, match=message):
        conf_with(balancer_states=states)


def test_balancer_states_defaults_and_switch_off():
    assert CONF["cmdb"]["balancer_states"] == {"lb": "lb"}
    assert CONF["cmdb"]["balancer_test"] is False
    assert conf_with(balancer_test=True)["cmdb"]["balancer_test"] is True
    with pytest.raises(ConfigError, match="balancer_test must be true or false"):
        conf_with(balancer_test="yes")
    assert conf_with(balancer_states={"lb": None})["cmdb"]["balancer_states"] == {"lb": None}
    assert conf_with(balancer_states={"lb": "lb.config"})["cmdb"]["balancer_states"] == {"lb": "lb.config"}


def test_summarize_state_return():
    ok = {
        "file_|-lb-config-file-file-managed_|-/etc/haproxy/haproxy.cfg_|-managed": {
            "__id__": "lb-config-file-file-managed",
            "result": True,
            "changes": {"diff": "..."},
            "comment": "File updated",
        },
        "service_|-lb-service-running-service-running_|-haproxy_|-running": {
            "__id__": "lb-service-running-service-running",
            "result": True,
            "changes": {},
            "comment": "reloaded",
        },
    }
    assert api.summarize_state_return(ok, 0) == {
        "result": True,
        "retcode": 0,
        "states": 2,
        "changed": ["lb-config-file-file-managed"],
        "failed": {},
        "errors": [],
    }
    refused = dict(ok)
    refused["file_|-lb-config-file-file-managed_|-/etc/haproxy/haproxy.cfg_|-managed"] = {
        "__id__": "lb-config-file-file-managed",
        "result": False,
        "changes": {},
        "comment": "check_cmd execution failed",
    }
    summary = api.summarize_state_return(refused, 2)
    assert summary["result"] is False and summary["failed"] == {
        "lb-config-file-file-managed": "check_cmd execution failed"
    }
    # Render errors and a refused concurrent run come back as a list of lines.
    errors = api.summarize_state_return(["Rendering SLS 'base:lb' failed: ..."], 1)
    assert errors["result"] is False and errors["errors"] == ["Rendering SLS 'base:lb' failed: ..."]
    # test=True: a state that would change has result None and counts as changed, not failed.
    would = {
        "file_|-lb-config-file-file-managed_|-/etc/haproxy/haproxy.cfg_|-managed": {
            "__id__": "lb-config-file-file-managed",
            "result": None,
            "changes": {"diff": "-    server web02 ..."},
            "comment": "The file /etc/haproxy/haproxy.cfg is set to be changed",
        }
    }
    assert api.summarize_state_return(would, 0)["result"] is True
    assert api.summarize_state_return(would, 0)["changed"] == ["lb-config-file-file-managed"]
    # A good-looking return with a failing retcode is not a success.
    assert api.summarize_state_return(ok, 1)["result"] is False
