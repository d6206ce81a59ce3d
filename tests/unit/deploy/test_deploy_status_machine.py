"""The deploy and host state machines."""

import pytest

from saltops.deploy import status_machine
from saltops.errors import Conflict


def test_happy_path_and_rollback_are_allowed():
    for a, b in [
        ("pending", "staging"),
        ("staging", "switching"),
        ("switching", "paused"),
        ("paused", "switching"),
        ("switching", "succeeded"),
        ("switching", "rolling_back"),
        ("rolling_back", "rolled_back"),
        ("rolling_back", "rollback_failed"),
    ]:
        status_machine.check(a, b)


@pytest.mark.parametrize(
    "a, b",
    [
        ("succeeded", "switching"),
        ("pending", "switching"),
        ("staging", "succeeded"),
        ("rolled_back", "staging"),
        ("paused", "succeeded"),
        ("failed", "rolling_back"),
    ],
)
def test_illegal_deploy_transitions(a, b):
    with pytest.raises(Conflict, match=f"cannot go from '{a}' to '{b}'"):
        status_machine.check(a, b)


def test_terminal_statuses_have_no_way_out():
    for status in status_machine.TERMINAL:
        assert status not in status_machine.TRANSITIONS


def test_host_transitions():
    status_machine.check_host("pending", "staged")
    status_machine.check_host("staged", "switched")
    status_machine.check_host("switched", "rolled_back")
    with pytest.raises(Conflict):
        status_machine.check_host("stage_failed", "switched")
    with pytest.raises(Conflict):
        status_machine.check_host("rolled_back", "switched")
