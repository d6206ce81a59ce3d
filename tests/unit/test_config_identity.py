import pytest

from saltops import config
from saltops.errors import ConfigError
from saltops.identity import acting_user


def test_defaults_fill_what_the_master_config_leaves_out():
    conf = config.load({"cachedir": "/var/cache/salt/master", "saltops": {"cmdb": {"roles": ["web", "lb"]}}})
    assert conf["db_url"] == "sqlite:////var/cache/salt/master/saltops/saltops.db"
    assert conf["cmdb"]["roles"] == ["web", "lb"]
    # Keys not given keep their defaults, one level down too.
    assert "telecom" in conf["cmdb"]["lines"]
    assert conf["cmdb"]["lb_serves"] == {"lb": "web"}
    assert config.DEFAULTS["cmdb"]["roles"] != ["web", "lb"], "defaults must not be mutated"


@pytest.mark.parametrize(
    "raw, message",
    [
        ("not a mapping", "must be a mapping"),
        ({"cmdb": {"lines": "telecom"}}, "cmdb:lines"),
        ({"cmdb": {"roles": ["web", ""]}}, "cmdb:roles"),
        ({"cmdb": {"lb_serves": ["lb"]}}, "lb_serves"),
    ],
)
def test_invalid_settings_are_refused_with_the_key_named(raw, message):
    with pytest.raises(ConfigError, match=message):
        config.load({"saltops": raw})


def test_acting_user_prefers_the_sudo_user_over_root(monkeypatch):
    monkeypatch.setenv("SUDO_USER", "alice")
    assert acting_user("root") == "alice"
    # An eauth user from salt-api is taken as it is.
    assert acting_user("deployer") == "deployer"
    monkeypatch.delenv("SUDO_USER")
    assert acting_user("root") == "root"
    # Nothing that could smuggle markup or SQL into the audit log survives.
    assert acting_user("x'; DROP TABLE audit_log;--") == "x___DROP_TABLE_audit_log_--"
