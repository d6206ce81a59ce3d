"""A real master whose `saltops:` block lost its db_url (a master.d file replaced the block of the
main config file): every SaltOps part refuses with the reason, and no new database appears."""

import time
from pathlib import Path

import pytest
import yaml

from tests.support import saltenv

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def lost_db_url_master(saltops_master_factory, salt_factories):
    factory = saltops_master_factory("settings-master")
    # The main file holds the full block (db_url included); this master.d file sets one alarm key,
    # and Salt's include rule replaces the main file's whole `saltops:` block with it.
    dropin = Path(factory.config_dir) / "master.d" / "zz-alarms.conf"
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text(yaml.safe_dump({"saltops": {"alarms": {"tick": 0.5}}}))
    configured = Path(factory.config["saltops"]["db_url"].removeprefix("sqlite:///"))
    minion = factory.salt_minion_daemon("settings-web01", overrides=saltenv.minion_overrides())
    with factory.started(start_timeout=120), minion.started(start_timeout=120):
        factory.minion = minion
        yield factory, configured


def test_runners_refuse_instead_of_serving_a_new_empty_cmdb(lost_db_url_master):
    master, configured = lost_db_url_master
    ret = master.salt_run_cli(timeout=90).run("cmdb.list")
    assert ret.returncode != 0, ret
    assert ret.data["result"] is False and "saltops:db_url is not set" in ret.data["error"]
    assert "master.d" in ret.data["error"]
    # Neither the configured database nor a default one under the cachedir was created.
    assert not configured.exists()
    assert not list(Path(master.config["cachedir"]).rglob("*.db"))


def test_the_pillar_refuses_and_says_why(lost_db_url_master):
    master, _configured = lost_db_url_master
    ret = master.minion.salt_call_cli(timeout=120).run("pillar.items", "unmask=True")
    errors = (ret.data or {}).get("_errors") or []
    assert any("saltops:db_url is not set" in e for e in errors), ret
    assert "cmdb" not in (ret.data or {})  # no data from a database that does not exist


def test_engines_and_pillar_say_why_they_did_not_start_in_the_master_log(lost_db_url_master):
    master, _configured = lost_db_url_master
    master.minion.salt_call_cli(timeout=120).run("saltutil.refresh_pillar", "wait=True")
    log_file = Path(master.config["log_file"])
    wanted = [f"{name} not started: invalid configuration: saltops:db_url is not set"
              for name in ("saltops_alarms", "saltops_tasks", "saltops_cmdb_watch")]
    wanted.append("the SaltOps CMDB pillar cannot run: saltops:db_url is not set")
    deadline = time.time() + 90
    text = ""
    while time.time() < deadline:
        text = log_file.read_text(errors="replace") if log_file.exists() else ""
        if all(w in text for w in wanted):
            break
        time.sleep(1)
    for line in wanted:
        found = [ln for ln in text.splitlines() if line in ln]
        assert found, f"{line!r} not in {log_file}"
        assert "[WARNING" in found[0] or "[ERROR" in found[0], found[0]
