"""Defining tasks: what is saved, and bad input refused with every problem and nothing saved."""

import pytest
import sqlalchemy as sa

from saltops.errors import Conflict, NotFound, ValidationError
from saltops.store import audit
from saltops.tasks import control, definitions
from saltops.tasks.schema import definitions as defs_table

NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC


def add(store, settings, functions, name="report", **fields):
    fields.setdefault("fun", "alarm.list")
    if not any(k in fields for k in ("cron", "every", "at")):
        fields["every"] = "10m"
    return definitions.add(store, name, fields, "alice", settings, NOW, functions)


def count(store):
    with store.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(defs_table)).scalar()


def test_a_runner_task_is_saved_with_its_next_fire_time_and_an_audit_row(store, settings, functions):
    saved = add(store, settings, functions, kwargs={"state": "all"}, notify="ops", timeout=30)
    assert saved["kind"] == "runner" and saved["next_due"] == NOW + 600
    assert saved["defined_by"] == "alice"
    [view] = control.list_tasks(store)
    assert view["every"] == "600s" and view["next_run"] == "2027-01-15T08:10:00+00:00"
    assert view["kwarg"] == {"state": "all"} and view["notify"] == "ops" and view["timeout"] == 30
    with store.connect() as conn:
        [row] = audit.history(conn, object_type="task", object_id="report")
    assert row["actor"] == "alice" and row["action"] == "task.add"


def test_a_minion_task_checks_the_function_on_the_hosts_its_targets_match(store, settings, functions):
    saved = add(store, settings, functions, name="ping-web", fun="test.ping", targets="env=prod role=web",
                cron="*/5 * * * *", tz="Asia/Shanghai")
    assert saved["kind"] == "minion" and saved["targets"] == "env=prod role=web"
    assert functions.calls == [("minion", "test.ping", ("web1.example.com", "web2.example.com"))]


@pytest.mark.parametrize("fields,problem", [
    ({"cron": "61 * * * *"}, "cron expression '61 * * * *' is not valid"),
    ({"fun": "alarm.nonesuch"}, "unknown runner function 'alarm.nonesuch'"),
    ({"kwargs": {"colour": "red"}}, "alarm.list takes no argument colour"),
    ({"fun": "test.ping", "targets": "role=web env=nowhere"}, "match no host in the CMDB"),
    ({"fun": "test.ping", "targets": "rack=7"}, "unknown target key 'rack'"),
    ({"timeout": 2}, "timeout 2 s is out of range (5-86400 s)"),
    ({"timeout": 90000}, "out of range"),
    ({"overlap": "maybe"}, "overlap 'maybe' is not one of skip, queue, kill"),
    ({"catch_up": "all"}, "catch_up 'all' is not one of once, skip"),
    ({"at": "2020-01-01 00:00", "every": None}, "is in the past"),
    ({"cron": "* * * * *", "every": "1m"}, "give exactly one of"),
    ({"tz": "Nowhere/City", "cron": "0 1 * * *"}, "unknown time zone"),
])
def test_bad_input_is_refused_and_nothing_is_saved(store, settings, functions, fields, problem):
    if "at" in fields or "cron" in fields:
        fields = {"every": None, **fields}
    with pytest.raises(ValidationError) as err:
        add(store, settings, functions, **fields)
    assert problem in str(err.value)
    assert count(store) == 0
    with store.connect() as conn:
        assert audit.history(conn, object_type="task") == []


def test_every_problem_is_listed_at_once(store, settings, functions):
    with pytest.raises(ValidationError) as err:
        add(store, settings, functions, name="bad name", every="2ms", timeout="soon", overlap="x")
    assert len(err.value.problems) == 4


def test_a_name_is_defined_once(store, settings, functions):
    add(store, settings, functions)
    with pytest.raises(Conflict, match="exists already"):
        add(store, settings, functions)
    assert count(store) == 1


def test_update_checks_the_whole_definition_and_keeps_it_on_refusal(store, settings, functions):
    add(store, settings, functions)
    with pytest.raises(ValidationError, match="out of range"):
        definitions.update(store, "report", {"timeout": 1}, "bob", settings, NOW + 5, functions)
    changed = definitions.update(store, "report", {"cron": "0 * * * *"}, "bob", settings, NOW + 5, functions)
    assert changed["sched_kind"] == "cron" and changed["next_due"] == NOW + 3600
    assert changed["defined_by"] == "alice"  # who defined it stays; the audit log says who changed it
    with store.connect() as conn:
        actions = [(r["actor"], r["action"]) for r in audit.history(conn, object_type="task")]
    assert actions == [("bob", "task.update"), ("alice", "task.add")]
    with pytest.raises(NotFound):
        definitions.update(store, "nonesuch", {"timeout": 9}, "bob", settings, NOW, functions)


def test_disable_clears_the_next_fire_time_and_enable_resumes_from_now(store, settings, functions):
    add(store, settings, functions)
    assert definitions.set_enabled(store, "report", False, "bob", NOW + 1)["next_due"] is None
    assert control.list_tasks(store, "report")[0]["next_run"] is None
    later = NOW + 10_000
    assert definitions.set_enabled(store, "report", True, "bob", later)["next_due"] == NOW + 600 * 17


def test_remove_deletes_the_definition(store, settings, functions):
    add(store, settings, functions)
    definitions.remove(store, "report", "bob")
    assert count(store) == 0
    with pytest.raises(NotFound):
        definitions.remove(store, "report", "bob")


def test_ensure_runner_task_registers_once_and_updates_on_change(store, settings, functions):
    first = definitions.ensure_runner_task(store, "tickets-deadlines", "alarm.list", {"state": "firing"},
                                           "saltops", settings, NOW, functions, every="1m")
    again = definitions.ensure_runner_task(store, "tickets-deadlines", "alarm.list", {"state": "firing"},
                                           "saltops", settings, NOW + 30, functions, every="1m")
    assert again["next_due"] == first["next_due"] == NOW + 60
    changed = definitions.ensure_runner_task(store, "tickets-deadlines", "alarm.list", {"state": "all"},
                                             "saltops", settings, NOW + 40, functions, cron="*/2 * * * *")
    assert changed["kwargs"] == {"state": "all"} and changed["sched_kind"] == "cron"
    with store.connect() as conn:
        assert len(audit.history(conn, object_type="task")) == 2


def test_only_allowed_functions_may_be_scheduled(store, functions):
    from saltops.tasks import settings as task_settings

    narrow = task_settings.load({"tasks": {"allow_minion": ["test.*", "state.apply"], "allow_runner": ["alarm.list"]}})
    with pytest.raises(ValidationError, match="'cmd.script' may not be scheduled here"):
        definitions.add(store, "shell", {"fun": "cmd.script", "targets": "role=web", "every": "1h"}, "eve", narrow,
                        NOW, functions)
    with pytest.raises(ValidationError, match="allow_runner allows alarm.list"):
        definitions.add(store, "sleepy", {"fun": "test.sleep", "every": "1h"}, "eve", narrow, NOW, functions)
    assert count(store) == 0
    assert definitions.add(store, "ping", {"fun": "test.ping", "targets": "role=web", "every": "1h"}, "eve", narrow,
                           NOW, functions)["fun"] == "test.ping"
