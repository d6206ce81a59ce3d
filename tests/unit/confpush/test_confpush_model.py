"""Checking a config set: every problem listed, the checked set normalised."""

import pytest

from saltops.confpush import config as cp_config
from saltops.confpush import model
from saltops.errors import ValidationError

LIMITS = cp_config.load({})


def _spec(**over):
    spec = {
        "roots": ["/etc/shop"],
        "values": {"port": 8080, "db_password": "sdb://vault/shop/db"},
        "files": [
            {
                "path": "/etc/shop/app.json",
                "template": '{"port": {{ values.port }}}\n',
                "validator": "python3 -m json.tool",
            }
        ],
    }
    spec.update(over)
    return spec


def _problems(spec, limits=LIMITS):
    with pytest.raises(ValidationError) as err:
        model.normalise(spec, limits)
    return err.value.problems


def test_a_valid_set_is_normalised_with_defaults():
    out = model.normalise(_spec(), LIMITS)
    assert out["files"][0]["action"] == "none"
    assert out["values"]["db_password"] == "sdb://vault/shop/db"
    assert out["roots"] == ["/etc/shop"]


@pytest.mark.parametrize(
    "path, problem",
    [
        ("/etc/shop/../passwd", "may not contain '..'"),
        ("etc/shop/a", "must be absolute"),
        ("/etc/other/a.conf", "outside the set's roots"),
        ("/etc/shop//a", "not a plain normalised path"),
        ("/etc/shop/a b", "not a plain normalised path"),
    ],
)
def test_paths_outside_the_roots_or_not_plain_are_refused(path, problem):
    problems = _problems(_spec(files=[{"path": path, "template": "x"}]))
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("root", ["/etc/sudoers.d", "/usr/local/etc", "/etc/ssh/conf", "/root/x"])
def test_system_roots_are_refused_unless_allowed(root):
    spec = _spec(roots=[root], files=[{"path": f"{root}/a", "template": "x"}])
    assert any("is a system path" in p for p in _problems(spec))
    allowed = dict(LIMITS, allowed_system_paths=[root])
    assert model.normalise(spec, allowed)["roots"] == [root]


def test_too_wide_a_root_is_refused():
    assert any("too wide" in p for p in _problems(_spec(roots=["/etc"])))


def test_binary_and_oversized_templates_are_refused():
    limits = dict(LIMITS, max_file_bytes=10)
    problems = _problems(
        _spec(
            files=[
                {"path": "/etc/shop/a", "template": "\x00\x01abc"},
                {"path": "/etc/shop/b", "template": "x" * 11},
            ]
        ),
        limits,
    )
    assert any("binary content" in p for p in problems)
    assert any("more than max_file_bytes (10)" in p for p in problems)


def test_a_secret_in_plain_text_is_refused_and_references_must_be_well_formed():
    problems = _problems(_spec(values={"db_password": "hunter2", "token": "pillar:bad key"}))
    assert any("values.db_password: looks like a secret" in p for p in problems)
    assert any("values.token" in p and "not a valid" in p for p in problems)


def test_a_service_action_needs_a_service_and_bad_modes_are_refused():
    problems = _problems(
        _spec(files=[{"path": "/etc/shop/a", "template": "x", "action": "reload", "mode": "999"}])
    )
    assert any("needs the service name" in p for p in problems)
    assert any("mode '999' is invalid" in p for p in problems)


def test_every_problem_is_listed_at_once():
    problems = _problems({"roots": [], "files": [], "surprise": 1})
    assert len(problems) == 3, problems
