"""A config push driven the way a web client drives it: through salt-api, with a short ``rest_timeout``.

salt-api's ``runner`` client waits ``rest_timeout`` seconds (a ``timeout`` in
the request overrides the master's setting) and then answers 504 while the
runner goes on.  The set here takes longer than that: its health check
sleeps ``SLEEP`` seconds on each host, and ``batch_size=1`` puts the two
minions (``c1``/``c2`` of the package's conftest) in two batches.
"""

import json
import os
import time

import pytest

from tests.integration.confpush.conftest import CP_MINIONS, ENV
from tests.support.refusals import assert_refused

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP = "cpbg"
SLEEP = 6
REST_TIMEOUT = 3
TEMPLATE = '{"port": {{ values.port }}, "host": "{{ hostname }}"}\n'


@pytest.fixture(scope="module")
def base(cp_dir):
    return os.path.join(cp_dir, "etc", APP)


@pytest.fixture(scope="module")
def app_hosts(salt_run, cp_minions):
    """Both minions run the app (no set is stored yet, so the reactor pushes nothing); put back afterwards."""
    for name in CP_MINIONS:
        ret = salt_run("cmdb.update", name, f'apps={{"{APP}": {{}}}}')
        assert ret.returncode == 0, (ret.stdout, ret.stderr)
    yield CP_MINIONS
    for name in CP_MINIONS:
        salt_run("cmdb.update", name, "apps={}")


def _store_set(api, base, port):
    spec = {
        "roots": [base],
        "values": {"port": port},
        "files": [
            {
                "path": f"{base}/{{hostname}}/app.json",
                "template": TEMPLATE,
                "validator": "python3 -m json.tool",
            }
        ],
        # Runs on a host whose file changed: each batch takes SLEEP seconds at least.
        "health_cmd": f"sleep {SLEEP}",
    }
    stored = api.run_data("ops", "confpush.set", app=APP, env=ENV, spec=spec)
    assert stored.get("created") is True, stored
    return stored["version"]


def _call(api, user, fun, **kwargs):
    """One runner call through salt-api that waits at most REST_TIMEOUT seconds for the return."""
    started = time.monotonic()
    resp = api.lowstate(user, {"client": "runner", "fun": fun, "kwarg": kwargs, "timeout": REST_TIMEOUT})
    return resp, time.monotonic() - started


def _follow(api, push_id, timeout=240):
    """``confpush.status`` polled through salt-api until the push ends (or ``timeout``); every answer."""
    seen, deadline = [], time.monotonic() + timeout
    while True:
        seen.append(api.run_data("viewer", "confpush.status", push_id))
        if seen[-1]["status"] != "running" or time.monotonic() > deadline:
            return seen
        time.sleep(1)


def _content(base, host):
    with open(f"{base}/{host}/app.json", encoding="utf-8") as fh:
        return json.load(fh)


def test_a_push_longer_than_rest_timeout_is_a_504_without_background(api, app_hosts, base):
    _store_set(api, base, 8081)
    resp, took = _call(api, "ops", "confpush.push", app=APP, env=ENV, batch_size=1)
    assert resp.status_code == 504, (resp.status_code, resp.text[:300])
    print(f"\nconfpush.push without background: HTTP 504 after {took:.2f} s")
    # The push went on without the caller: it is found by app/env only, and ends.
    [running] = api.run_data("ops", "confpush.status", app=APP, env=ENV)
    assert running["runner_alive"] is True
    assert _follow(api, running["id"])[-1]["status"] == "succeeded"


def test_a_background_push_returns_its_id_at_once_and_status_follows_it_to_the_end(api, app_hosts, base):
    version = _store_set(api, base, 8082)
    resp, took = _call(api, "ops", "confpush.push", app=APP, env=ENV, batch_size=1, background=True)
    assert resp.status_code == 200, (resp.status_code, resp.text[:300])
    print(f"\nconfpush.push background=True: HTTP 200 after {took:.2f} s")
    started = resp.json()["return"][0]
    push_id = started["id"]
    assert started["status"] == "running" and started["version"] == version, started
    assert started["actor"] == "ops" and started["jid"], started
    assert f"confpush.status {push_id}" in started["comment"]
    assert set(started["hosts"]) == set(CP_MINIONS)

    # The lock is held across the hand-off: a second push of the app/env is refused with a reason.
    again = api.run_data("ops", "confpush.push", app=APP, env=ENV, background=True)
    assert_refused(again, f"config push {push_id} of {APP}/{ENV} .* is running")
    assert_refused(api.run_data("ops", "confpush.resume", app=APP, env=ENV), f"config push {push_id} .*")

    seen = _follow(api, push_id)
    finished = seen[-1]
    assert finished["status"] == "succeeded", finished
    assert finished["hosts_by_status"] == {"pushed": 2}, finished
    # It was followed while it ran: a batch under way, then the end.
    assert any(s["status"] == "running" and s["batch"] is not None for s in seen), seen
    for host in CP_MINIONS:
        assert _content(base, host) == {"port": 8082, "host": host}

    # The job that drove it is a runner job of the caller's, its return the push's result.
    [job] = api.run_data("ops", "jobs.lookup_jid", started["jid"]).values()
    assert job["return"]["id"] == push_id and job["return"]["status"] == "succeeded", job
    assert job["user"] == "ops"
    history = api.run_data("viewer", "confpush.history", app=APP, env=ENV, limit=1)
    assert history[0]["id"] == push_id and history[0]["actor"] == "ops"


def test_a_background_rollback_puts_the_files_back_and_bad_requests_are_refused_at_once(api, app_hosts, base):
    versions = [v["version"] for v in api.run_data("ops", "confpush.versions", app=APP, env=ENV)]
    assert len(versions) >= 2
    # Refused in the answer itself, before anything is recorded or any job started.
    assert_refused(
        api.run_data("ops", "confpush.rollback", app=APP, env=ENV, to=999, background=True),
        f"{APP}/{ENV} has no version 999",
    )
    assert api.run_data("ops", "confpush.status", app=APP, env=ENV) == []

    resp, took = _call(api, "ops", "confpush.rollback", app=APP, env=ENV, to=min(versions), background=True)
    assert resp.status_code == 200, (resp.status_code, resp.text[:300])
    print(f"\nconfpush.rollback background=True: HTTP 200 after {took:.2f} s")
    started = resp.json()["return"][0]
    assert started["kind"] == "rollback" and started["status"] == "running", started
    finished = _follow(api, started["id"])[-1]
    assert finished["status"] == "succeeded", finished
    for host in CP_MINIONS:
        assert _content(base, host) == {"port": 8081, "host": host}


def test_confpush_status_is_a_read_the_viewer_may_make_and_the_deployer_may_not(api, app_hosts):
    assert api.run("deployer", "confpush.status").status_code == 401
    assert api.run_data("viewer", "confpush.status", app=APP, env=ENV) == []
