"""A deploy driven the way a web client or CI drives it: through salt-api, as the lab's ``deployer``.

``deploy.run background=True`` answers with the deploy's id while the deploy
goes on in a runner job of its own; ``deploy.status`` follows it to the end.
"""

import re
import subprocess
import time

import pytest

from tests.functional.deploy import deploy_appkit as kit
from tests.integration.deploy.conftest import APP, DEPLOY_MINIONS, ENV
from tests.support.refusals import assert_refused

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VERSION = "7.0.0"


def _wait_until_finished(api, deploy_id, timeout=300):
    """``deploy.status`` polled as ``deployer`` until the deploy ends (or ``timeout``); its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        status = api.run_data("deployer", "deploy.status", deploy_id)
        if status["status"] in ("succeeded", "failed", "rolled_back", "aborted", "interrupted"):
            return status
        if time.monotonic() > deadline:
            return status
        time.sleep(1)


def test_a_background_deploy_returns_its_id_at_once_and_status_follows_it(
    api, deploy_minions, deploy_hosts, artifacts
):
    # Each host's restart waits 2 s: the deploy is still in flight when the call returns.
    path, digest = kit.build_artifact(artifacts.directory, VERSION, app=APP, slow=2)
    started = api.run_data(
        "deployer",
        "deploy.run",
        app=APP,
        env=ENV,
        version=VERSION,
        artifact=artifacts.url(path),
        sha256=digest,
        return_timeout=5,
        background=True,
    )
    assert started["retcode"] == 0, started
    assert started["status"] in ("pending", "staging"), started
    assert started["version"] == VERSION and started["actor"] == "deployer"
    assert started["jid"] and f"deploy.status {started['id']}" in started["comment"]

    # A second deploy of the app to the env is refused while the first one runs.
    again = api.run_data(
        "deployer", "deploy.run", app=APP, env=ENV, version=VERSION, artifact=artifacts.url(path),
        sha256=digest, background=True,
    )
    assert_refused(again, f"deploy {started['id']} of {APP} {VERSION} to {ENV} is in progress")

    finished = _wait_until_finished(api, started["id"])
    assert finished["status"] == "succeeded", finished
    assert finished["actor"] == "deployer" and finished["stale"] is False
    assert finished["hosts_by_status"] == {"switched": len(DEPLOY_MINIONS)}, finished
    for name in DEPLOY_MINIONS:
        assert kit.get(f"http://127.0.0.1:{deploy_hosts[name]['apps'][APP]['port']}/healthz") == (
            200,
            f"ok {VERSION}",
        )

    # The job that drove it is a runner job of the deployer's, readable by its jid.
    [job] = api.run_data("deployer", "jobs.lookup_jid", started["jid"]).values()
    assert job["return"]["id"] == started["id"] and job["return"]["status"] == "succeeded", job
    assert job["user"] == "deployer"


def test_bad_arguments_through_salt_api_are_refused_not_run(api):
    missing = api.run_data("deployer", "deploy.resume")
    assert_refused(missing, r"^deploy\.resume: missing argument\(s\): id; nothing was changed")
    unknown = api.run_data("deployer", "deploy.status", id=1, verbose=True)
    assert_refused(unknown, r"unknown argument\(s\) verbose")
    refused = api.run_data("ops", "cmdb.update", status="maintenance")
    assert_refused(refused, r"^cmdb\.update: missing argument\(s\): hostname")


def test_salt_run_prints_one_line_per_progress_step(salt_master, deploy_minions, deploy_hosts, artifacts):
    path, digest = kit.build_artifact(artifacts.directory, "7.0.1", app=APP)
    # salt-run as a person runs it: no --out, so progress events go through their own outputter.
    cmd = [
        arg for arg in salt_master.salt_run_cli().cmdline(
            "deploy.run", f"app={APP}", f"env={ENV}", "version=7.0.1", f"artifact={artifacts.url(path)}",
            f"sha256={digest}", "return_timeout=5",
        )
        if not arg.startswith(("--out=", "--out-indent="))
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    steps = [line for line in done.stdout.splitlines() if re.match(rf"^\d\d:\d\d:\d\d deploy \d+ {APP} 7\.0\.1: ", line)]
    phases = [line.split(": ", 1)[1].split(" ", 1)[0] for line in steps]
    assert phases[0] == "created" and "staging" in phases and phases[-1] == "succeeded", done.stdout
    # No progress event printed as a nested dict (Salt's default for job events).
    assert "suffix:" not in done.stdout and "progress" not in done.stdout, done.stdout


def test_a_background_rollback_returns_its_id_at_once_and_status_follows_it(
    api, deploy_minions, deploy_hosts, artifacts
):
    # A release this env never had is refused in the answer: nothing recorded, no job started.
    before = api.run_data("deployer", "deploy.history", app=APP, env=ENV)
    refused = api.run_data("deployer", "deploy.rollback", app=APP, env=ENV, to="0.0.9", background=True)
    assert_refused(refused, "0.0.9")
    assert api.run_data("deployer", "deploy.history", app=APP, env=ENV) == before

    # The live release is 7.0.1 (the modules' tests above): back to 7.0.0, driven by a job of its own.
    started = api.run_data("deployer", "deploy.rollback", app=APP, env=ENV, background=True)
    assert started["retcode"] == 0, started
    assert started["kind"] == "rollback" and started["version"] == VERSION, started
    assert started["status"] in ("pending", "staging", "switching") and started["actor"] == "deployer"
    assert started["jid"] and f"deploy.status {started['id']}" in started["comment"]
    again = api.run_data("deployer", "deploy.rollback", app=APP, env=ENV, background=True)
    assert_refused(again, f"deploy {started['id']} of {APP} {VERSION} to {ENV} is in progress")

    finished = _wait_until_finished(api, started["id"])
    assert finished["status"] == "succeeded" and finished["kind"] == "rollback", finished
    for name in DEPLOY_MINIONS:
        assert kit.get(f"http://127.0.0.1:{deploy_hosts[name]['apps'][APP]['port']}/healthz") == (
            200,
            f"ok {VERSION}",
        )
    [job] = api.run_data("deployer", "jobs.lookup_jid", started["jid"]).values()
    assert job["return"]["id"] == started["id"] and job["user"] == "deployer", job
