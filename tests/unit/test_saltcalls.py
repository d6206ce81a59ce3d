"""What the core gets from SaltCalls: the minions that really answered, and progress.

A master that is not there (Salt's clients raising) is exercised with Salt's own
LocalClient in tests/functional/cmdb/test_refresh_balancers.py.
"""

from saltops.saltcalls import SaltCalls, answered


def test_only_real_answers_count():
    raw = {
        "web01": {"ret": True, "retcode": 0, "jid": "1"},
        "web02": {"ret": {"a": 1}, "retcode": 2},
        # How Salt marks minions that did not answer (full_return):
        "gone1": False,
        "gone2": {"failed": True},
        "gone3": {"out": "no_return", "ret": "Minion did not return. [No response]"},
        "gone4": "Minion did not return",
    }
    assert answered(raw) == {"web01": (True, 0), "web02": ({"a": 1}, 2)}
    assert answered(None) == {}


def test_progress_reaches_the_callback_given():
    seen = []
    SaltCalls(progress=lambda message, data: seen.append((message, data))).progress("refreshing", targets=2)
    SaltCalls().progress("nobody listens")
    assert seen == [("refreshing", {"targets": 2})]
