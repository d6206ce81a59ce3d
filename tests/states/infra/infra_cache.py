"""testinfra checks for the cache role (see conftest.py for how to run them)."""


def test_redis_installed_running_and_bound(host, os_family, pillar):
    name = "redis" if os_family == "RedHat" else "redis-server"
    assert host.package(name).is_installed
    assert host.service(name).is_running
    cfg = host.file("/etc/redis/redis.conf").content_string
    assert f"bind {pillar['cmdb']['ip']} 127.0.0.1" in cfg
    assert host.socket(f"tcp://{pillar['cmdb']['ip']}:6379").is_listening
