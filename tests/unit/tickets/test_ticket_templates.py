"""Templates are checked when saved, forms when a ticket is made, conditions without eval."""

import time

import pytest
import sqlalchemy as sa

from saltops.errors import NotFound, ValidationError
from saltops.tickets import conditions, templates
from saltops.tickets.schema import templates as templates_table
from tests.support import tickets_kit

BASE = {
    "name": "t1",
    "fields": [{"name": "host", "type": "str", "required": True}, {"name": "env", "type": "choice",
                                                                    "choices": ["dev", "prod"]}],
    "steps": [{"user": "dan"}],
    "action": {"fun": "cmdb.update", "args": ["{{ form.host }}"], "kwargs": {"status": "maintenance"}},
}


def problems_of(doc, **kwargs):
    with pytest.raises(ValidationError) as info:
        templates.check(doc, **kwargs)
    return "\n".join(info.value.problems)


def changed(doc, **over):
    out = {**doc, **over}
    return out


@pytest.mark.parametrize("bad, expected", [
    ({"action": {"fun": "cmd.run", "args": ["rm -rf /"]}}, "not an allowed action"),
    ({"action": {"fun": "cmdb.update", "args": ["{{ form.hostname }}"]}}, "unknown field 'hostname'"),
    ({"action": {"fun": "cmdb.update", "args": ["web-{{ form.host }}"]}}, "referenced as a whole string"),
    ({"fields": [{"name": "n", "type": "float"}]}, "unknown type 'float'"),
    ({"fields": [{"name": "n", "type": "int", "min": "1"}]}, "must be a whole number"),
    ({"fields": [{"name": "n", "type": "str", "regex": "("}]}, "not a regular expression"),
    ({"fields": [{"name": "c", "type": "choice"}]}, "choices: required"),
    ({"fields": [{"name": "title", "type": "str"}]}, "taken by the ticket runner"),
    ({"steps": [{"user": "dan", "role": "ops"}]}, "exactly one approver"),
    ({"steps": [{"role": "ops", "mode": "some"}]}, "is not any or all"),
    ({"steps": [{"role": "ops", "when": "region == eu"}]}, "unknown field 'region'"),
    ({"steps": []}, "at least one approval step"),
    ({"colour": "red"}, "colour: unknown key"),
    ({"action": {"fun": "deploy.run", "kwargs": {"app": "shop", "background": False}}},
     "action.kwargs.background: set by the ticket itself (deploy.run starts in the background"),
])
def test_a_bad_template_is_refused_naming_the_problem(bad, expected):
    assert expected in problems_of(changed(BASE, **bad))


def test_the_runner_check_is_asked_about_the_action():
    asked = []

    def check_runner(fun, args, kwargs):
        asked.append(fun)
        return ["cmdb.update takes no argument(s) colour"]

    assert "takes no argument(s) colour" in problems_of(BASE, check_runner=check_runner)
    assert asked == ["cmdb.update"]


def test_saving_refuses_unknown_people_roles_and_departments_and_stores_nothing(sqlite_store):
    doc = changed(BASE, name="t2", steps=[{"user": "nobody"}, {"role": "auditors"}, {"department_head": "hr"}])
    with pytest.raises(ValidationError) as info:
        templates.save(sqlite_store, "tester", doc, time.time())
    text = "\n".join(info.value.problems)
    assert "unknown user 'nobody'" in text and "unknown role 'auditors'" in text and "unknown department 'hr'" in text
    with sqlite_store.connect() as conn:
        assert conn.execute(sa.select(templates_table).where(templates_table.c.name == "t2")).first() is None


def test_each_save_is_a_new_version_and_old_versions_stay(store):
    first = templates.save(store, "tester", BASE, time.time())
    second = templates.save(store, "tester", changed(BASE, description="v2"), time.time())
    assert (first["version"], second["version"]) == (1, 2)
    with store.connect() as conn:
        assert templates.get(conn, "t1")[1]["description"] == "v2"
        assert templates.get(conn, "t1", 1)[1]["description"] == ""
        with pytest.raises(NotFound):
            templates.get(conn, "t1", 3)
        assert {t["name"]: t["version"] for t in templates.listing(conn)}["t1"] == 2


FORM_BODY = templates.check({
    "name": "f",
    "fields": [
        {"name": "host", "type": "host", "required": True},
        {"name": "count", "type": "int", "min": 1, "max": 10},
        {"name": "flag", "type": "bool"},
        {"name": "env", "type": "choice", "choices": ["dev", "prod"], "default": "dev"},
        {"name": "tags", "type": "list", "choices": ["a", "b", "c"], "max": 2},
        {"name": "ticket_ref", "type": "str", "regex": r"[A-Z]+-\d+"},
    ],
    "steps": [{"user": "dan"}],
})


def known_host(name):
    return name == "web1.example.com"


def test_a_good_form_is_typed_and_defaults_filled():
    form = templates.validate_form(FORM_BODY, {"host": "web1.example.com", "count": "3", "flag": "true",
                                               "tags": "a,b", "ticket_ref": "OPS-12"}, known_host)
    assert form == {"host": "web1.example.com", "count": 3, "flag": True, "env": "dev", "tags": ["a", "b"],
                    "ticket_ref": "OPS-12"}


def test_a_bad_form_lists_every_problem():
    with pytest.raises(ValidationError) as info:
        templates.validate_form(FORM_BODY, {"host": "ghost.example.com", "count": 11, "flag": "maybe",
                                            "env": "qa", "tags": ["a", "z"], "ticket_ref": "ops 12",
                                            "colour": "red"}, known_host)
    text = "\n".join(info.value.problems)
    for expected in ("host: host 'ghost.example.com' is not in the CMDB", "count: is more than 10",
                     "flag: 'maybe' is not true or false", "env: 'qa' is not one of dev, prod",
                     "tags: z not among a, b, c", "does not match", "colour: unknown field"):
        assert expected in text
    with pytest.raises(ValidationError, match="host: required"):
        templates.validate_form(FORM_BODY, {}, known_host)


def test_substitution_replaces_whole_values_only_and_never_renders_the_text():
    form = {"host": "{{ 7*7 }}", "count": 3}
    assert templates.substitute(["{{ form.host }}", {"n": "{{form.count}}"}, "plain"], form) == \
        ["{{ 7*7 }}", {"n": 3}, "plain"]


@pytest.mark.parametrize("text, form, expected", [
    ("env == prod", {"env": "prod"}, True),
    ("env == 'prod'", {"env": "dev"}, False),
    ("env != prod", {"env": "dev"}, True),
    ("count == 3", {"count": 3}, True),
    ("flag == true", {"flag": True}, True),
    ("flag == true", {"flag": False}, False),
    ("env in [dev, 'test']", {"env": "test"}, True),
    ("env not in [dev, test]", {"env": "prod"}, True),
    ("tags in [a]", {"tags": ["b", "a"]}, True),
    ("env == prod and not (count == 1 or count == 2)", {"env": "prod", "count": 3}, True),
    ("env == prod or count == 1", {"env": "dev", "count": 2}, False),
    ("missing == x", {}, False),
])
def test_conditions(text, form, expected):
    assert conditions.holds(text, form) is expected


@pytest.mark.parametrize("text", ["env ==", "env = prod", "__import__('os') == 1", "env == prod prod",
                                  "env in prod", "(env == prod", "", "env == [a]"])
def test_bad_conditions_are_refused(text):
    with pytest.raises(ValidationError):
        conditions.parse(text, {"env"} if "__import__" not in text else {"env"})


def test_the_kit_template_is_valid():
    assert templates.check(tickets_kit.MAINT)["steps"][1]["when"] == "env == prod"


def test_the_lab_deploy_template_is_valid_and_its_action_is_a_deploy_from_the_form():
    from saltops.lab import tickets as lab_tickets

    body = templates.check(lab_tickets.DEPLOY_TEMPLATE)
    assert [s["name"] for s in body["steps"]] == ["lead", "ops"]
    form = templates.validate_form(body, {"app": "shop", "version": 1.1, "env": "dev", "sha256": "ab" * 32,
                                          "artifact": "http://127.0.0.1:8088/shop-1.1.tar.gz"})
    assert templates.substitute(body["action"]["kwargs"], form) == {
        "app": "shop", "version": "1.1", "env": "dev", "artifact": "http://127.0.0.1:8088/shop-1.1.tar.gz",
        "sha256": "ab" * 32}
    with pytest.raises(ValidationError) as info:
        templates.validate_form(body, {"app": "Shop!", "version": "1.1", "env": "qa", "sha256": "x",
                                       "artifact": "ftp://x"})
    assert len(info.value.problems) == 4, info.value.problems
