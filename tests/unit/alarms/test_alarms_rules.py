from pathlib import Path

import pytest
import yaml
from alarms_testkit import BASE_RULES, make_ruleset

from saltops.alarms import rules
from saltops.errors import ValidationError

EXAMPLE = Path(rules.__file__).with_name("rules.example.yml")


def test_base_rules_parse_with_inheritance():
    rs = make_ruleset()
    assert [r.name for r in rs.rules] == ["DiskFull", "LoadHigh", "ServiceDown", "HostSilent"]
    assert rs.route.group_wait == 5 and rs.route.repeat_interval == 3600
    child = rs.route.routes[0]
    # A child inherits what it does not set.
    assert child.group_interval == 30 and child.group_wait == 1 and child.group_by == ["alertname", "host"]
    assert set(rs.by_beacon) == {"diskusage", "load", "service"}
    assert rs.absent[0].absent_for == 120


def test_shipped_example_is_valid():
    data = yaml.safe_load(EXAMPLE.read_text())
    channels = set()
    for rcv in data["receivers"].values():
        channels.update(rcv["channels"])
    rs = rules.parse(data, channels=channels, source=str(EXAMPLE))
    assert rs.rules


def _problems(mutate):
    data = yaml.safe_load(BASE_RULES)
    mutate(data)
    with pytest.raises(ValidationError) as err:
        rules.parse(data, channels={"hook", "sms"})
    return err.value.problems


def test_every_problem_is_listed_with_its_place():
    def mutate(d):
        d["rules"][0]["threshold"] = "ninety"
        d["rules"][1]["for"] = "5 minutes"
        d["rules"][2]["severity"] = "urgent"
        d["rules"][3]["absent_for"] = None
        d["route"]["routes"][0]["receiver"] = "nobody"
        d["inhibit_rules"][0]["source_matchers"] = ["alertname=="]

    problems = _problems(mutate)
    text = "\n".join(problems)
    assert "rules[0] (DiskFull).threshold" in text
    assert "rules[1] (LoadHigh).for" in text
    assert "rules[2] (ServiceDown).severity" in text
    assert "rules[3] (HostSilent).absent_for" in text
    assert "route.routes[0].receiver: 'nobody'" in text
    assert "inhibit_rules[0].source_matchers" in text
    assert len(problems) == 6


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda d: d["rules"].append(dict(d["rules"][0])), "defined twice"),
        (lambda d: d["rules"][0].update(colour="red"), "unknown keys ['colour']"),
        (lambda d: d["rules"][0].update(labels={"host": "x"}), "'host' is set by the pipeline"),
        (lambda d: d["receivers"]["ops"].update(channels=["pager"]), "'pager' is not defined"),
        (lambda d: d.pop("route"), "route: the top route"),
        (lambda d: d["route"].update(matchers=['a="b"']), "top route matches every alert"),
        (lambda d: d["rules"][1].pop("field"), "op/threshold need a field"),
        (lambda d: d["rules"][0].update(event="tag"), "tag pattern"),
        (lambda d: d["rules"][0].update(remediate={"function": "cmd.run"}), "remediate"),
        (lambda d: d["rules"][0].update(remediate={"function": "service.restart", "args": ["a;rm"]}), "plain words"),
        (lambda d: d["rules"][0].update(remediate={"function": "service.restart", "cooldown": "soon"}),
         "remediate.cooldown"),
        (lambda d: d.update(defaults={"remediate_cooldown": "-"}), "defaults.remediate_cooldown"),
        (lambda d: d.update(defaults={"resolve_afer": "5m"}), "defaults: unknown keys ['resolve_afer']"),
    ],
)
def test_single_problems(mutate, needle):
    assert any(needle in p for p in _problems(mutate)), _problems(mutate)


def test_remediation_cooldown_per_rule_or_from_defaults():
    text = {"defaults": {"remediate_cooldown": "30m"},
            "rules": [{"name": "A", "beacon": "service", "remediate": {"function": "service.restart"}},
                      {"name": "B", "beacon": "service", "remediate": {"function": "service.start", "cooldown": "0s"}},
                      {"name": "C", "beacon": "service"}],
            "route": {"receiver": "ops"}, "receivers": {"ops": {"channels": ["hook"]}}}
    by_name = {r.name: r for r in rules.parse(text, channels={"hook"}).rules}
    assert by_name["A"].remediate["cooldown"] == 1800 and by_name["B"].remediate["cooldown"] == 0
    assert by_name["A"].fire_event and not by_name["C"].fire_event
    del text["defaults"]
    assert rules.parse(text, channels={"hook"}).rules[0].remediate["cooldown"] == rules.REMEDIATE_COOLDOWN == 600


def test_load_file_errors_are_clear(tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):
        rules.load_file(str(tmp_path / "missing.yml"))
    bad = tmp_path / "bad.yml"
    bad.write_text("rules: [\n")
    with pytest.raises(ValidationError, match="not valid YAML"):
        rules.load_file(str(bad))
    bad.write_text("- just a list\n")
    with pytest.raises(ValidationError, match="must be a mapping"):
        rules.load_file(str(bad))


def test_condition_types():
    rs = make_ruleset()
    disk = rs.rules[0]
    assert disk.condition(95) is True and disk.condition(10) is False
    assert disk.condition("95.5") is True
    assert disk.condition("full") is None
    assert disk.condition(True) is None
    svc = rs.rules[2]
    assert svc.condition(False) is True and svc.condition(True) is False
