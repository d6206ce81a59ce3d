"""A deploy ticket that really deploys after two approvals: a master on MariaDB and a real minion.

The lab's people and deploy template (``saltops.lab.tickets``, loaded the way
``saltops lab up`` loads them): ``dev`` applies, ``lead`` (dev's manager)
approves, then ``ops``.  The action is ``deploy.run`` with the form's app,
version, env, artifact and checksum: the minion fetches the artifact from a
local HTTP server, switches to it and restarts the app, which then answers
its health URL with the new version.  A ticket's action is done only when
the deploy finished; a deploy of a version that was never published fails
(``execution error``) and a retry by ``ops`` runs it again, once.
"""

import os
import shutil
import tempfile

import pytest

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from saltops.lab import seed
from saltops.lab import tickets as lab_tickets
from saltops.store import get_store
from tests.functional.deploy import deploy_appkit as kit
from tests.support import app_minions, tickets_kit

pytestmark = [pytest.mark.integration, pytest.mark.mysql, pytest.mark.slow]

MINION = "t1.tdeploy.test"
APP = "tshop"
ENV = "test"


@pytest.fixture(scope="module")
def env(saltops_master_factory, make_mysql_database):
    db_url = make_mysql_database("saltops_tdeploy").url
    assert seed.seed_tickets(db_url)["template"]["version"] == 1
    store = get_store(db_url)
    deploy_dir = tempfile.mkdtemp(prefix="sotd-", dir="/tmp")
    www = os.path.join(deploy_dir, "www")
    os.makedirs(www)
    hosts = app_minions.app_host_records(deploy_dir, {MINION: ("bj-idc1", "telecom")}, APP, ENV)
    repo.write(store, "tests", list(hosts.values()), rules=Rules.from_config(config.load({})))
    master = saltops_master_factory("tdeploy-m", db_url=db_url)
    try:
        with kit.ArtifactServer(www) as artifacts, master.started(start_timeout=120):
            with app_minions.hooks_pillar(master), app_minions.started_minions(master, [MINION]):
                yield {"store": store, "artifacts": artifacts, "www": www, "dir": deploy_dir,
                       "run": master.salt_run_cli(timeout=300),
                       "health": f"http://127.0.0.1:{hosts[MINION]['apps'][APP]['port']}/healthz"}
    finally:
        kit.stop_apps(deploy_dir)
        shutil.rmtree(deploy_dir, ignore_errors=True)


def run(ctx, user, fun, *args, ok=True, **kwargs):
    return tickets_kit.salt_run_as(ctx["run"], user, fun, *args, ok=ok, **kwargs)


def form(ctx, version, path, digest):
    return {"app": APP, "version": version, "env": ENV, "artifact": ctx["artifacts"].url(path),
            "sha256": digest}


def deploys(ctx):
    return run(ctx, "ops", "deploy.history", app=APP, env=ENV).data


@pytest.fixture(scope="module")
def template(env):
    # The lab saved its template without Salt; the runner's save checks deploy.run's arguments too.
    path = os.path.join(env["dir"], "app-deploy.yml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(lab_tickets.DEPLOY_TEMPLATE)
    assert run(env, "ops", "ticket.template_save", "path=" + path).data["version"] == 2
    bad = os.path.join(env["dir"], "bad.yml")
    with open(bad, "w", encoding="utf-8") as fh:
        fh.write(lab_tickets.DEPLOY_TEMPLATE.replace("    sha256:", "    background: false\n    sha256:"))
    refused = run(env, "ops", "ticket.template_save", "path=" + bad, ok=False)
    assert refused.returncode == 1 and "action.kwargs.background: set by the ticket itself" in refused.stdout
    return lab_tickets.DEPLOY_TEMPLATE_NAME


def test_the_deploy_runs_after_the_second_approval_once_as_the_applicant(env, template):
    path, digest = kit.build_artifact(env["www"], "2.0.0", app=APP)
    created = run(env, "dev", "ticket.create", template, **form(env, "2.0.0", path, digest)).data
    assert (created["state"], created["waiting_for"]) == ("in_approval", ["lead"]), created
    tid = str(created["id"])
    assert "not an approver" in run(env, "ops", "ticket.approve", tid, ok=False).stdout

    first = run(env, "lead", "ticket.approve", tid, comment="fine by me").data
    assert (first["state"], first["step"], first["waiting_for"]) == ("in_approval", "ops", ["ops"]), first
    assert first["action_state"] is None
    # Nothing was deployed after the first approval: no deploy record, no app on the host.
    assert deploys(env) == []
    assert kit.get(env["health"])[0] is None

    second = run(env, "ops", "ticket.approve", tid).data
    # The approval returns once the deploy has finished, not when it started.
    assert (second["state"], second["action_state"]) == ("completed", "done"), second
    assert kit.get(env["health"]) == (200, "ok 2.0.0")

    shown = run(env, "dev", "ticket.show", tid).data
    [action] = shown["actions"]
    assert action["on_behalf"] == {"applicant": "dev", "approvers": ["lead", "ops"]}
    assert action["run_as"] == "dev" and action["kwargs"]["version"] == "2.0.0"
    assert action["result"]["deploy"]["status"] == "succeeded"
    assert action["result"]["deploy"]["finished"] is True
    assert action["output"].startswith(f"deploy {action['result']['deploy']['id']} of {APP} 2.0.0 to {ENV}: "
                                       "succeeded (1 switched)"), action["output"][:300]
    [executed] = [t for t in shown["transitions"] if t["entity"] == "action" and t["op"] == "execute"]
    assert (executed["to_state"], executed["actor"]) == ("done", "dev")
    assert executed["comment"] == "deploy.run as dev on behalf of dev, lead, ops"

    status = run(env, "ops", "deploy.status", str(action["result"]["deploy"]["id"])).data
    assert (status["status"], status["actor"], status["version"]) == ("succeeded", "dev", "2.0.0"), status
    assert status["hosts_by_status"] == {"switched": 1}

    # Never twice: a second approval and a retry are refused, and there is still one deploy.
    again = run(env, "ops", "ticket.approve", tid, ok=False)
    assert again.returncode == 1 and "is completed" in again.stdout
    retry = run(env, "ops", "ticket.retry", tid, ok=False)
    assert retry.returncode == 1 and "is completed" in retry.stdout
    assert [d["version"] for d in deploys(env)] == ["2.0.0"]


def test_a_version_never_published_is_an_execution_error_and_a_retry_by_ops_runs_it_once(env, template):
    # Built, but not published yet: the artifact's URL answers 404 until it is moved in.
    unpublished = os.path.join(env["dir"], "later")
    os.makedirs(unpublished, exist_ok=True)
    path, digest = kit.build_artifact(unpublished, "2.1.0", app=APP)
    created = run(env, "dev", "ticket.create", template, **form(env, "2.1.0", path, digest)).data
    tid = str(created["id"])
    run(env, "lead", "ticket.approve", tid)
    failed = run(env, "ops", "ticket.approve", tid).data
    assert (failed["state"], failed["action_state"]) == ("in_approval", "execution_error"), failed
    shown = run(env, "dev", "ticket.show", tid).data
    [action] = shown["actions"]
    assert action["result"]["deploy"]["status"] == "failed", action
    assert action["output"].startswith(f"deploy {action['result']['deploy']['id']} of {APP} 2.1.0 to {ENV}: "
                                       "failed"), action["output"][:300]
    assert "404" in action["output"], action["output"][:3000]
    assert kit.get(env["health"]) == (200, "ok 2.0.0")  # the host kept its release

    refused = run(env, "dev", "ticket.retry", tid, ok=False)
    assert refused.returncode == 1 and "only operators retry" in refused.stdout
    shutil.move(path, os.path.join(env["www"], os.path.basename(path)))
    retried = run(env, "ops", "ticket.retry", tid).data
    assert retried["state"] == "completed", retried
    assert [(a["attempt"], a["state"]) for a in retried["actions"]] == [(1, "execution_error"), (2, "done")]
    assert retried["actions"][1]["on_behalf"] == {"applicant": "dev", "approvers": ["lead", "ops"],
                                                  "retried_by": "ops"}
    assert kit.get(env["health"]) == (200, "ok 2.1.0")
    assert run(env, "ops", "ticket.retry", tid, ok=False).returncode == 1
    history = [(d["version"], d["status"]) for d in deploys(env)]
    assert history == [("2.1.0", "succeeded"), ("2.1.0", "failed"), ("2.0.0", "succeeded")], history
