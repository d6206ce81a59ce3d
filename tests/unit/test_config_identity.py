import pytest

from saltops import config
from saltops.errors import ConfigError
from saltops.identity import acting_user


def test_defaults_fill_what_the_master_config_leaves_out():
    conf = config.load({"cachedir": "/var/cache/salt/master", "saltops": {"cmdb": {"roles": ["web", "lb"]}}})
    assert conf["db_url"] is None  # no default database: see the next test
    assert conf["cmdb"]["roles"] == ["web", "lb"]
    # Keys not given keep their defaults, one level down too.
    assert "telecom" in conf["cmdb"]["lines"]
    assert conf["cmdb"]["lb_serves"] == {"lb": "web"}
    assert config.DEFAULTS["cmdb"]["roles"] != ["web", "lb"], "defaults must not be mutated"
    # No replica unless one is named: everything is read from db_url.
    assert conf["read_url"] is None


def test_a_missing_db_url_is_an_error_never_a_new_database():
    conf = config.load({"cachedir": "/var/cache/salt/master", "saltops": {"alarms": {"rules_file": "/x.yml"}}})
    with pytest.raises(ConfigError, match="saltops:db_url is not set.*master.d/\\*.conf file replaces the block"):
        config.db_url(conf)
    url = "mysql+pymysql://saltops@db.example.com/saltops"
    assert config.db_url(config.load({"saltops": {"db_url": url}})) == url
    with pytest.raises(ConfigError, match="must be a database URL"):
        config.load({"saltops": {"db_url": ""}})


@pytest.mark.parametrize(
    "raw, message",
    [
        ("not a mapping", "must be a mapping"),
        ({"cmdb": {"lines": "telecom"}}, "cmdb:lines"),
        ({"cmdb": {"roles": ["web", ""]}}, "cmdb:roles"),
        ({"cmdb": {"lb_serves": ["lb"]}}, "lb_serves"),
        ({"read_url": "replica.example.com"}, "read_url"),
        ({"read_url": "mysql://r@replica/saltops", "read_options": ["pool_size"]}, "read_options"),
        ({"cmdb": {"replica_max_lag": -1}}, "cmdb:replica_max_lag"),
        ({"cmdb": {"replica_check_interval": "5s"}}, "cmdb:replica_check_interval"),
    ],
)
def test_invalid_settings_are_refused_with_the_key_named(raw, message):
    with pytest.raises(ConfigError, match=message):
        config.load({"saltops": raw})


def test_acting_user_prefers_the_sudo_user_over_root(monkeypatch):
    monkeypatch.setenv("SUDO_USER", "alice")
    assert acting_user("root") == "alice"
    # salt-run under sudo hands runners "sudo_<user>"; a salt-api user named so keeps its name.
    assert acting_user("sudo_alice") == "alice"
    assert acting_user("sudo_bob") == "sudo_bob"
    # An eauth user from salt-api is taken as it is.
    assert acting_user("deployer") == "deployer"
    # Salt's "UNKNOWN" (a runner call in the master's own process that named nobody)
    # is the OS user, never a user called UNKNOWN.
    assert acting_user("UNKNOWN") == "alice"
    monkeypatch.delenv("SUDO_USER")
    assert acting_user("root") == "root"
    monkeypatch.setattr("getpass.getuser", lambda: "svc")
    assert acting_user("UNKNOWN") == "svc" and acting_user(None) == "svc"
    # Nothing that could smuggle markup or SQL into the audit log survives.
    assert acting_user("x'; DROP TABLE audit_log;--") == "x___DROP_TABLE_audit_log_--"


def test_cached_settings_follow_a_changed_block():
    block = {"db_url": "sqlite:////tmp/one.db", "cmdb": {"version_check_interval": 3}}
    opts = {"saltops": block, "cachedir": "/tmp/c"}
    first = config.load_cached(opts)
    assert first["cmdb"]["version_check_interval"] == 3
    assert config.load_cached(opts) is first
    # The block changed in place (a reloaded or edited config): new settings, never the old ones.
    block["cmdb"]["version_check_interval"] = 0
    second = config.load_cached(opts)
    assert second is not first and second["cmdb"]["version_check_interval"] == 0
    # A bad block is refused every time, not remembered as good.
    block["cmdb"]["lb_serves"] = ["lb"]
    with pytest.raises(ConfigError):
        config.load_cached(opts)
