"""testinfra checks for the db role (see conftest.py for how to run them)."""


def test_mariadb_installed_and_running(host):
    assert host.package("mariadb-server").is_installed
    assert host.service("mariadb").is_running


def test_config_from_cmdb(host, os_family):
    path = (
        "/etc/my.cnf.d/60-saltops.cnf"
        if os_family == "RedHat"
        else "/etc/mysql/mariadb.conf.d/60-saltops.cnf"
    )
    cfg = host.file(path).content_string
    assert "server_id = " in cfg and "log_bin = mysql-bin" in cfg
    assert host.socket("tcp://0.0.0.0:3306").is_listening
