"""testinfra checks for the db role (see conftest.py for how to run them)."""

import pytest


@pytest.fixture(scope="module")
def instance(pillar):
    """What the CMDB record says of this host's database: port, server_id, replica_of."""
    entry = dict({"port": 3306, "replica_of": "", "server_id": 0}, **pillar["cmdb"]["apps"].get("mysql", {}))
    if not entry["server_id"]:
        octets = [int(part) for part in pillar["cmdb"]["ip"].split(".")]
        entry["server_id"] = (
            octets[0] * 16777216 + octets[1] * 65536 + octets[2] * 256 + octets[3]
        ) % 4294967295 or 1
    return entry


def test_mariadb_installed_and_running(host, os_family):
    client = "mariadb" if os_family == "RedHat" else "mariadb-client"
    for name in ("mariadb-server", client):
        assert host.package(name).is_installed, name
    assert host.service("mariadb").is_running


def test_config_from_cmdb(host, os_family, instance):
    path = (
        "/etc/my.cnf.d/60-saltops.cnf"
        if os_family == "RedHat"
        else "/etc/mysql/mariadb.conf.d/60-saltops.cnf"
    )
    cfg = host.file(path)
    assert cfg.user == "root" and cfg.mode == 0o644
    text = cfg.content_string
    assert f"server_id = {instance['server_id']}\n" in text and "log_bin = mysql-bin" in text
    assert f"port = {instance['port']}\n" in text
    assert ("read_only = 1" if instance["replica_of"] else "read_only = 0") in text


def test_listening(host, instance):
    assert host.socket(f"tcp://0.0.0.0:{instance['port']}").is_listening


def test_sql_through_the_client(host, instance):
    """The server answers a query, and runs with what the config file says."""
    assert host.check_output("mysql -N -B -e 'SELECT 1'") == "1"
    row = host.check_output("mysql -N -B -e 'SELECT @@server_id, @@read_only, @@log_bin, @@port'").split()
    assert row == [
        str(instance["server_id"]),
        "1" if instance["replica_of"] else "0",
        "1",
        str(instance["port"]),
    ]
