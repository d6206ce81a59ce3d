"""The ticket and org runners through Salt's runner loader: documented, and refusing with the reason."""

import yaml

from tests.support import tickets_kit
from tests.support.refusals import assert_refused

FUNCTIONS = {
    "ticket": ("template_save", "templates", "create", "show", "list", "approve", "reject", "return", "resubmit",
               "cancel", "comment", "delegate", "confirm", "retry", "rate", "report"),
    "org": ("load", "sync_eauth", "list", "show"),
}


def test_runner_functions_are_loaded_with_docs(runners):
    for module, names in FUNCTIONS.items():
        for name in names:
            assert "CLI Example:" in runners[f"{module}.{name}"].__doc__, f"{module}.{name}"


def test_org_and_templates_are_checked_through_the_runners(runners):
    assert_refused(runners["org.load"](text="users: {eve: {manager: mallory}}"), "users.eve.manager: unknown user")
    assert_refused(runners["org.load"](), "exactly one of path= .* or text=")
    assert runners["org.load"](text=tickets_kit.ORG)["users"] == 6
    assert runners["org.show"]("alice")["manager"] == "dan"
    # The runner loader is asked whether cmdb.update takes the action's arguments.
    doc = yaml.safe_load(tickets_kit.MAINT)
    doc["action"]["args"].append("extra")
    assert_refused(runners["ticket.template_save"](text=yaml.safe_dump(doc)),
                   "cmdb.update takes at most 1 positional argument")
    doc["action"] = {"fun": "cmd.run", "args": ["id"]}
    assert_refused(runners["ticket.template_save"](text=yaml.safe_dump(doc)), "not an allowed action")
    assert runners["ticket.templates"]() == []
    saved = runners["ticket.template_save"](text=tickets_kit.MAINT)
    assert (saved["name"], saved["version"], saved["action"]) == ("maint", 1, "cmdb.update")
    assert runners["ticket.templates"](name="maint")["source"] == tickets_kit.MAINT


def test_ticket_calls_are_refused_with_the_reason(runners):
    runners["org.load"](text=tickets_kit.ORG)
    runners["ticket.template_save"](text=tickets_kit.MAINT)
    # Called through the loader, the acting user is this process's OS user: not in the org, no manager.
    assert_refused(runners["ticket.create"]("maint", host="web1.example.com", env="dev"),
                   "host 'web1.example.com' is not in the CMDB")
    assert_refused(runners["ticket.create"]("nosuch"), "unknown template 'nosuch'")
    assert_refused(runners["ticket.show"](1), "no ticket 1")
    assert_refused(runners["ticket.show"]("one"), "a ticket id is a number")
    assert_refused(runners["ticket.list"](limit="many"), "limit must be a whole number")
    assert_refused(runners["ticket.report"](), "does not have the role 'ops'")
    assert_refused(runners["ticket.rate"](1, 9), "from 1 to 5")
    assert_refused(runners["ticket.delegate"]("bob", "2020-01-01T00:00:00Z"), "unknown user|future")
    assert runners["ticket.list"]() == []
