"""Checking a task's function and arguments against a runner's signature or a minion's argspec."""

from saltops.bridge.functions import minion_problems, runner_problems


def report(state="firing", limit=10):
    return state, limit


def anything(name, **kwargs):
    return name, kwargs


RUNNERS = {"alarm.list": report, "x.any": anything}


def test_runner_functions_and_their_arguments_are_checked():
    assert runner_problems(RUNNERS, "alarm.list", [], {"state": "all"}) == []
    assert runner_problems(RUNNERS, "alarm.nope", [], {}) == [
        "unknown runner function 'alarm.nope' (see salt-run sys.list_runner_functions)"]
    [problem] = runner_problems(RUNNERS, "alarm.list", [], {"colour": "red"})
    assert "takes no argument(s) colour" in problem and "state, limit" in problem
    assert runner_problems(RUNNERS, "alarm.list", [1, 2, 3], {}) == [
        "alarm.list takes at most 2 positional argument(s), got 3"]
    assert runner_problems(RUNNERS, "x.any", ["n"], {"whatever": 1}) == []


class Minions:
    """What ``LocalClient.cmd(..., 'sys.argspec', [fun])`` returns from the minions that answered."""

    def __init__(self, returns):
        self.returns = returns
        self.asked = None

    def cmd(self, tgt, fun, arg, tgt_type, timeout):
        self.asked = (tgt, fun, arg, tgt_type)
        return self.returns


def test_execution_functions_are_checked_on_the_target_minions():
    spec = {"args": ["name", "sig"], "kwargs": False, "varargs": False, "defaults": None}
    minions = Minions({"web1": {"service.restart": spec}, "web2": {"service.restart": spec}})
    assert minion_problems(minions, ["web1", "web2"], "service.restart", ["nginx"], {}) == []
    assert minions.asked == (["web1", "web2"], "sys.argspec", ["service.restart"], "list")
    [problem] = minion_problems(minions, ["web1"], "service.restart", [], {"force": True})
    assert "takes no argument(s) force" in problem
    assert minion_problems(Minions({"web1": {}}), ["web1"], "service.restrat", [], {}) == [
        "unknown execution function 'service.restrat' on the target minions"]
    assert minion_problems(Minions({}), ["web1"], "test.ping", [], {}, timeout=5) == [
        "cannot check 'test.ping': none of the target minions answered within 5 s"]
