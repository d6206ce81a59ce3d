"""testinfra checks for the cache role (see conftest.py for how to run them)."""

import json

import pytest


@pytest.fixture(scope="module")
def password(host, pillar):
    """The Redis password: the pillar's reference resolved on the host, as the state did."""
    ref = (pillar.get("cache") or {}).get("requirepass") or ""
    if ref.startswith("sdb://"):
        out = host.check_output("salt-call --local --out=json sdb.get %s", ref)
        return json.loads(out)["local"]
    return ref


@pytest.fixture(scope="module")
def port(pillar):
    return (pillar.get("cache") or {}).get("port", 6379)


def test_redis_installed_running_and_bound(host, os_family, pillar, port):
    name = "redis" if os_family == "RedHat" else "redis-server"
    assert host.package(name).is_installed
    assert host.service(name).is_running
    cfg = host.file("/etc/redis/redis.conf")
    assert cfg.mode == 0o640
    assert f"bind {pillar['cmdb']['ip']} 127.0.0.1" in cfg.content_string
    assert host.socket(f"tcp://{pillar['cmdb']['ip']}:{port}").is_listening
    assert host.socket(f"tcp://127.0.0.1:{port}").is_listening


def test_ping_with_the_password(host, pillar, password, port):
    auth = f"--no-auth-warning -a '{password}' " if password else ""
    out = host.check_output(f"redis-cli -h {pillar['cmdb']['ip']} -p {port} {auth}ping")
    assert out == "PONG"


def test_password_is_required_when_referenced(host, pillar, password, port):
    if not password:
        pytest.skip("this host's pillar gives Redis no password")
    out = host.run(f"redis-cli -h {pillar['cmdb']['ip']} -p {port} ping")
    assert "NOAUTH" in out.stdout + out.stderr
