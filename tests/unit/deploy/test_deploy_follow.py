"""Waiting for a deploy's end from outside it (a ticket's action): the record read until it is final."""

import json
import socket

from saltops.deploy import api as deploy_api
from saltops.deploy import follow, history
from tests.support.deploy_hosts import host

SHA = "cd" * 32


class Steps:
    """A controllable clock; each sleep moves the deploy to its next status (or only the time)."""

    def __init__(self, store, deploy_id, statuses):
        self.store, self.deploy_id, self.statuses = store, deploy_id, list(statuses)
        self.now = 0.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        if self.statuses:
            status, values = self.statuses.pop(0)
            with self.store.begin() as conn:
                history.set_status(conn, self.deploy_id, status, **values)


def started(store, dconf, add_hosts, owner=None):
    add_hosts([host("f1.example.com")])
    request = deploy_api.validate_request("shop", "prod", "3.1", "https://ci.example.com/shop-3.1.tar.gz",
                                          SHA)
    return deploy_api.start(store, dconf, request, "dev", owner=owner)


def test_waits_until_the_deploy_succeeded_and_says_so(store, dconf, add_hosts):
    deploy_id = started(store, dconf, add_hosts)
    steps = Steps(store, deploy_id, [("staging", {}), ("switching", {}), ("succeeded", {})])
    described, note = follow.until_finished(store, deploy_id, 60, 90, poll=2, clock=steps.clock,
                                            sleep=steps.sleep)
    assert (described["status"], note, steps.sleeps) == ("succeeded", None, [2, 2, 2])
    out = follow.outcome(described, note)
    assert (out["ok"], out["retcode"]) == (True, 0)
    assert out["output"].splitlines()[0] == f"deploy {deploy_id} of shop 3.1 to prod: succeeded (1 pending)"
    assert json.loads(out["output"].split("\n", 1)[1])["id"] == deploy_id
    assert out["result"] == {"deploy": {"id": deploy_id, "status": "succeeded", "version": "3.1",
                                        "finished": True}}


def test_a_failed_deploy_is_a_failure_with_its_error_first(store, dconf, add_hosts):
    deploy_id = started(store, dconf, add_hosts)
    steps = Steps(store, deploy_id, [("failed", {"error": "staging failed on 1 host(s)"})])
    waited = follow.until_finished(store, deploy_id, 60, 90, clock=steps.clock, sleep=steps.sleep)
    out = follow.outcome(*waited)
    assert (out["ok"], out["retcode"], out["result"]["deploy"]["status"]) == (False, 1, "failed")
    assert out["output"].splitlines()[0].endswith(": failed (1 pending): staging failed on 1 host(s)")


def test_the_wait_ends_at_the_time_limit_and_the_deploy_goes_on(store, dconf, add_hosts):
    deploy_id = started(store, dconf, add_hosts)
    steps = Steps(store, deploy_id, [("staging", {})])
    described, note = follow.until_finished(store, deploy_id, 5, 90, poll=2, clock=steps.clock,
                                            sleep=steps.sleep)
    assert described["status"] == "staging" and steps.sleeps == [2, 2, 1]
    assert note == f"deploy {deploy_id} is still staging after 5 s; it goes on in its own runner job: " \
                   f"follow it with deploy.status {deploy_id}"
    out = follow.outcome(described, note)
    assert out["ok"] is False and out["result"]["deploy"]["finished"] is False
    with store.connect() as conn:
        assert history.get_run(conn, deploy_id)["status"] == "staging"  # reading only


def test_a_deploy_whose_runner_is_gone_ends_the_wait_with_what_to_do(store, dconf, add_hosts):
    # A process of this host that no longer exists drove it.
    deploy_id = started(store, dconf, add_hosts, owner=f"{socket.gethostname()}:{2 ** 22 + 7}")
    steps = Steps(store, deploy_id, [])
    described, note = follow.until_finished(store, deploy_id, 60, 90, clock=steps.clock, sleep=steps.sleep)
    assert steps.sleeps == [] and described["status"] == "pending"
    assert note == (f"deploy {deploy_id} is pending and its runner is gone: resume or abort it "
                    f"(deploy.resume {deploy_id}, deploy.abort {deploy_id})")
    assert follow.outcome(described, note)["ok"] is False
