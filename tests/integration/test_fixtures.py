"""The shared fixtures of tests/conftest.py do what they promise (others' tests rely on them)."""

import pymysql
import pytest

from saltops.cmdb.schema import hosts
from saltops.lab import demo
from saltops.lab.seed import seed
from tests.support import mysql as mysql_support

pytestmark = pytest.mark.integration


def test_salt_run_returns_the_runner_data(salt_run):
    ret = salt_run("cmdb.targets", role="db")
    assert ret.returncode == 0, ret
    assert demo.DB in ret.data
    assert demo.WEB not in ret.data


def test_salt_run_reports_a_failing_runner(salt_run):
    ret = salt_run("cmdb.show", "no-such-host.example.com")
    assert ret.returncode != 0


def test_salt_call_reaches_a_minion_with_its_cmdb_pillar(salt_call):
    ret = salt_call(demo.LB, "pillar.get", "cmdb:roles", unmask=True)
    assert ret.returncode == 0, ret
    assert ret.data == ["base", "lb"]


def test_salt_call_refuses_an_unknown_minion(salt_call):
    with pytest.raises(KeyError, match="no test minion"):
        salt_call("nope.example.com", "test.ping")


def test_every_minion_answers_and_has_the_saltops_modules(salt_minions, salt_cli):
    # Other modules attach minions of their own to the shared master: ask ours by name.
    ret = salt_cli.run("-L", "test.ping", minion_tgt=",".join(demo.MINION_IDS))
    assert ret.data == dict.fromkeys(demo.MINION_IDS, True)
    modules = salt_cli.run("sys.list_modules", "saltops*", minion_tgt=demo.WEB).data
    assert "saltops_release" in modules


def test_api_users_match_the_lab(api):
    assert set(api.passwords) == {"ops", "viewer", "deployer", "dev", "lead"}
    assert api.login("ops").status_code == 200


def _databases():
    conn = pymysql.connect(**mysql_support.server_settings(), ssl_disabled=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES")
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


@pytest.mark.mysql
def test_mysql_database_is_unique_and_dropped(make_mysql_database):
    first, second = make_mysql_database(), make_mysql_database()
    assert first.name != second.name
    assert {first.name, second.name} <= _databases()
    first.drop()
    second.drop()
    assert not {first.name, second.name} & _databases()


@pytest.mark.mysql
def test_a_master_on_mariadb(saltops_master_factory, make_mysql_database):
    database = make_mysql_database("saltops_fx")
    seed(database.url)
    master = saltops_master_factory("saltops-mariadb", db_url=database.url)
    with master.started(start_timeout=120):
        assert master.config["saltops"]["db_url"] == database.url
        ret = master.salt_run_cli(timeout=120).run("cmdb.list", role="db")
        assert ret.returncode == 0, ret
        assert [h["hostname"] for h in ret.data] == [demo.DB]
    with database.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {hosts.name}")
        assert cur.fetchone()[0] == len(demo.HOSTS)
