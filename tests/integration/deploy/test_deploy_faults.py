"""Deploys through a real salt-master, real minions and the salt-run CLI, with faults injected.

Each test checks what the hosts serve afterwards and what the history says.
The tests share the minions and build on each other's releases, in file order.
"""

import os
import signal
import subprocess
import time
import types

import pytest
import sqlalchemy as sa

from saltops.deploy.schema import hosts as deploy_hosts_table
from saltops.deploy.schema import runs
from tests.functional.deploy import deploy_appkit as kit
from tests.integration.deploy.conftest import APP, DEPLOY_MINIONS, ENV

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def ops(deploy_minions, deploy_hosts, artifacts, salt_run, salt_master, cmdb_store):
    class Ops:
        store = cmdb_store

        @staticmethod
        def build(version, **kw):
            path, digest = kit.build_artifact(artifacts.directory, version, app=APP, **kw)
            return artifacts.url(path), digest

        @staticmethod
        def deploy(version, sha=None, **kw):
            url, digest = Ops.build(version, broken=kw.pop("broken", False), slow=kw.pop("slow", 0))
            kw.setdefault("return_timeout", 5)
            # `env=` would be taken as the CLI process's environment: pass every argument as text.
            args = {
                "app": APP,
                "env": ENV,
                "version": version,
                "artifact": url,
                "sha256": sha or digest,
                **kw,
            }
            before = Ops.latest_id()
            ret = salt_run("deploy.run", *(f"{k}={v}" for k, v in args.items()))
            return Ops.result(ret, before)

        @staticmethod
        def result(ret, before=None, deploy_id=None):
            """The CLI result with ``data`` = the deploy as deploy.status shows it (None if none was made).

            salt-run prints progress events before the return, so its stdout is not one document.
            """
            latest = deploy_id or Ops.latest_id()
            return types.SimpleNamespace(
                returncode=ret.returncode,
                stdout=ret.stdout,
                stderr=ret.stderr,
                deploy=salt_run("deploy.status", latest).data if latest != before else None,
            )

        @staticmethod
        def serving(name):
            return kit.get(f"http://127.0.0.1:{deploy_hosts[name]['apps'][APP]['port']}/healthz")

        @staticmethod
        def all_serve(version):
            return {name: Ops.serving(name) for name in DEPLOY_MINIONS} == {
                name: (200, f"ok {version}") for name in DEPLOY_MINIONS
            }

        @staticmethod
        def popen(*args):
            cmd = salt_master.salt_run_cli().cmdline(*args)
            return subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
            )

        @staticmethod
        def latest_id():
            with cmdb_store.connect() as conn:
                return conn.execute(sa.select(sa.func.max(runs.c.id)).where(runs.c.app == APP)).scalar()

        @staticmethod
        def host_statuses(deploy_id):
            with cmdb_store.connect() as conn:
                rows = conn.execute(
                    sa.select(deploy_hosts_table.c.hostname, deploy_hosts_table.c.status).where(
                        deploy_hosts_table.c.deploy_id == deploy_id
                    )
                )
                return {r.hostname: r.status for r in rows}

        @staticmethod
        def wait_for(predicate, timeout=60, what="condition"):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                value = predicate()
                if value:
                    return value
                time.sleep(0.2)
            raise AssertionError(f"timed out waiting for {what}")

    return Ops


def test_rolling_deploys_and_history(ops, salt_run):
    first = ops.deploy("1.0.0")
    assert first.returncode == 0, first.stderr
    assert first.deploy["status"] == "succeeded", first.stdout
    second = ops.deploy("2.0.0", batch_size=1)
    assert second.deploy["status"] == "succeeded", second.stdout
    assert ops.all_serve("2.0.0")
    assert len(second.deploy["batches"]) == 3
    assert {h["previous_version"] for h in second.deploy["hosts"].values()} == {"1.0.0"}
    listed = salt_run("deploy.history", f"env={ENV}", app=APP).data
    assert [r["version"] for r in listed[:2]] == ["2.0.0", "1.0.0"]
    assert all(r["actor"] for r in listed)
    full = salt_run("deploy.status", second.deploy["id"]).data
    assert full["hosts_by_status"] == {"switched": 3} and full["stale"] is False


def test_plan_shows_batches_without_changing_anything(ops, salt_run):
    before = ops.latest_id()
    plan = salt_run("deploy.plan", f"env={ENV}", app=APP, strategy="canary", batch_size=1).data
    assert plan["total"] == 3 and plan["batches"][0]["kind"] == "canary"
    assert ops.latest_id() == before


def test_bad_checksum_switches_nothing(ops):
    ret = ops.deploy("2.1.0", sha="ab" * 32)
    assert ret.returncode != 0
    assert ret.deploy["status"] == "failed"
    assert "checksum mismatch on 3 host(s)" in ret.deploy["error"]
    assert ret.deploy["hosts_by_status"] == {"stage_failed": 3}
    assert ops.all_serve("2.0.0")


def test_canary_failing_health_check_is_rolled_back(ops):
    ret = ops.deploy("2.2.0", broken=True, strategy="canary")
    assert ret.deploy["status"] == "rolled_back", ret.stdout
    canary = ret.deploy["batches"][0]["hosts"]
    assert len(canary) == 1 and ret.deploy["hosts"][canary[0]]["status"] == "rolled_back"
    assert "health check" in ret.deploy["error"]
    others = [h for h in DEPLOY_MINIONS if h not in canary]
    assert all(ret.deploy["hosts"][h]["status"] == "staged" for h in others)
    assert ops.all_serve("2.0.0")


def test_second_deploy_of_the_same_app_is_refused(ops, salt_run):
    paused = ops.deploy("2.3.0", strategy="canary", pause=True)
    assert paused.deploy["status"] == "paused", paused.stdout
    refused = ops.deploy("2.4.0")
    assert refused.returncode != 0
    assert (
        f"deploy {paused.deploy['id']} of {APP} 2.3.0 to {ENV} is in progress (paused"
        in refused.stderr + refused.stdout
    )
    aborted = ops.result(salt_run("deploy.abort", paused.deploy["id"]), deploy_id=paused.deploy["id"])
    assert aborted.deploy["status"] == "aborted", aborted.stdout
    assert ops.all_serve("2.0.0")


def test_hanging_artifact_url_times_out(ops, artifacts):
    url = artifacts.url("hang/dshop-9.tar.gz")
    start = time.monotonic()
    ret = ops.popen(
        "deploy.run",
        f"app={APP}",
        f"env={ENV}",
        "version=2.5.0",
        f"artifact={url}",
        f"sha256={'cd' * 32}",
        "return_timeout=5",
    )
    out, err = ret.communicate(timeout=120)
    assert time.monotonic() - start < 60
    assert ret.returncode != 0
    assert b"timed out" in out + err
    with ops.store.connect() as conn:
        run = conn.execute(sa.select(runs).where(runs.c.id == ops.latest_id())).mappings().one()
    assert run["status"] == "failed" and "nothing was switched" in run["error"]
    assert ops.all_serve("2.0.0")


def test_rollback_to_a_release_no_longer_on_disk(ops, salt_run, deploy_hosts):
    assert ops.deploy("3.0.0").deploy["status"] == "succeeded"
    # keep=2: 1.0.0 is gone from every host.
    for rec in deploy_hosts.values():
        assert not os.path.exists(os.path.join(rec["apps"][APP]["base"], APP, "releases", "1.0.0"))
    before = ops.latest_id()
    back = ops.result(
        salt_run("deploy.rollback", f"env={ENV}", app=APP, to="1.0.0", return_timeout=5), before
    )
    assert back.deploy["status"] == "succeeded", back.stdout
    assert back.deploy["kind"] == "rollback" and back.deploy["version"] == "1.0.0"
    assert ops.all_serve("1.0.0")
    unknown = salt_run("deploy.rollback", f"env={ENV}", app=APP, to="0.0.1")
    assert (
        unknown.returncode != 0 and "0.0.1 was never deployed successfully" in unknown.stderr + unknown.stdout
    )


def test_runner_killed_mid_deploy_then_status_and_resume(ops, salt_run):
    url, digest = ops.build("4.0.0", slow=3)
    before = ops.latest_id()
    proc = ops.popen(
        "deploy.run",
        f"app={APP}",
        f"env={ENV}",
        "version=4.0.0",
        f"artifact={url}",
        f"sha256={digest}",
        "batch_size=1",
        "return_timeout=5",
    )
    try:
        deploy_id = ops.wait_for(
            lambda: ops.latest_id() != before and ops.latest_id(), what="the deploy to start"
        )
        ops.wait_for(
            lambda: (
                "staged" in ops.host_statuses(deploy_id).values()
                and list(ops.host_statuses(deploy_id).values()).count("switched") >= 1
            ),
            timeout=90,
            what="the first batch to switch",
        )
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    status = salt_run("deploy.status", deploy_id).data
    assert status["status"] == "switching" and status["stale"] is True and status["runner_alive"] is False
    assert ops.wait_for(lambda: salt_run("deploy.status").data, what="active list")[0]["stale"] is True
    resumed = ops.result(salt_run("deploy.resume", deploy_id), deploy_id=deploy_id)
    assert resumed.deploy["status"] == "succeeded", resumed.stdout
    assert ops.all_serve("4.0.0")
    assert salt_run("deploy.status", deploy_id).data["stale"] is False


def test_minion_killed_mid_batch_counts_as_failed(ops, salt_run, deploy_minions):
    plan = salt_run("deploy.plan", f"env={ENV}", app=APP, batch_size=1).data
    victim = plan["batches"][-1]["hosts"][0]
    url, digest = ops.build("5.0.0", slow=3)
    before = ops.latest_id()
    proc = ops.popen(
        "deploy.run",
        f"app={APP}",
        f"env={ENV}",
        "version=5.0.0",
        f"artifact={url}",
        f"sha256={digest}",
        "batch_size=1",
        "return_timeout=3",
    )
    try:
        deploy_id = ops.wait_for(
            lambda: ops.latest_id() != before and ops.latest_id(), what="the deploy to start"
        )
        ops.wait_for(
            lambda: set(ops.host_statuses(deploy_id).values()) == {"staged"},
            timeout=90,
            what="pre-stage to finish",
        )
        deploy_minions[victim].terminate()
        _out, _err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    statuses = ops.host_statuses(deploy_id)
    # The dead minion could not confirm either way: its rollback is marked failed too.
    assert statuses[victim] == "rollback_failed", statuses
    assert all(statuses[h] == "rolled_back" for h in DEPLOY_MINIONS if h != victim), statuses
    full = salt_run("deploy.status", deploy_id).data
    assert full["status"] == "rollback_failed" and victim in full["error"]
    assert "no answer from the minion" in full["hosts"][victim]["error"]
    for name in DEPLOY_MINIONS:
        if name != victim:
            assert ops.serving(name) == (200, "ok 4.0.0")
    deploy_minions[victim].start(start_timeout=120)


# --------------------------------------------------------------- the database lost mid-deploy


@pytest.fixture(scope="module")
def lost_db(deploy_hosts, salt_master, deploy_dir):
    """A private MariaDB holding the deploy hosts, and a salt-run config whose CMDB is that database.

    The salt-run processes of this config publish through the shared master
    and its minions; only their database is the one the test stops.
    """
    import yaml

    from saltops import config
    from saltops.cmdb import repo
    from saltops.cmdb.model import Rules
    from saltops.store.engine import Store
    from tests.support.mariadb_instance import MariaDBInstance, available

    problem = available()
    if problem:
        pytest.fail(problem)
    with MariaDBInstance() as db:
        url = db.url("saltops_dbloss")
        store = Store(url)
        store.migrate()
        repo.write(store, "tests", list(deploy_hosts.values()), rules=Rules.from_config(config.load({})))
        with open(salt_master.config_file, encoding="utf-8") as fh:
            master = yaml.safe_load(fh)
        master["saltops"] = dict(master["saltops"], db_url=url)
        master["saltops"]["deploy"] = dict(master["saltops"].get("deploy") or {}, store_wait=3)
        conf_dir = os.path.join(deploy_dir, "dbloss-conf")
        os.makedirs(conf_dir)
        with open(os.path.join(conf_dir, "master"), "w", encoding="utf-8") as fh:
            yaml.safe_dump(master, fh)
        cachedir = os.path.join(salt_master.config["root_dir"], salt_master.config["cachedir"])
        journal = os.path.join(cachedir, "saltops", "deploy-journal")
        yield types.SimpleNamespace(db=db, store=store, conf_dir=conf_dir, journal=journal)
        store.dispose()


def test_database_lost_mid_deploy_keeps_switched_hosts_and_resumes(ops, lost_db, salt_master):
    cli = salt_master.salt_run_cli(timeout=240)

    def run(*args):
        return cli.run(f"--config-dir={lost_db.conf_dir}", *args)

    def hosts():
        with lost_db.store.connect() as conn:
            rows = conn.execute(sa.select(deploy_hosts_table.c.hostname, deploy_hosts_table.c.status))
            return {r.hostname: r.status for r in rows}

    def batch_started(number):
        with lost_db.store.connect() as conn:
            status = conn.execute(
                sa.text("SELECT status FROM deploy_batches WHERE number = :n"), {"n": number}
            ).scalar()
        return status in ("running", "done")

    before = {name: ops.serving(name) for name in DEPLOY_MINIONS}
    url, digest = ops.build("6.0.0", slow=6)
    proc = subprocess.Popen(
        cli.cmdline(
            f"--config-dir={lost_db.conf_dir}",
            "deploy.run",
            f"app={APP}",
            f"env={ENV}",
            "version=6.0.0",
            f"artifact={url}",
            f"sha256={digest}",
            "batch_size=1",
            "return_timeout=10",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        # Batch 0 recorded as switched, batch 1's minion at work (its restart takes 6 s).
        ops.wait_for(
            lambda: list(hosts().values()).count("switched") == 1 and batch_started(1),
            timeout=150,
            what="batch 1 to start",
        )
        lost_db.db.stop()
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # The runner stopped at the batch boundary and said what it kept where.
    assert proc.returncode != 0
    assert "the database went away at batch 1" in out + err, out + err
    assert "deploy.resume" in out + err
    journaled = [name for name in os.listdir(lost_db.journal) if name.startswith("deploy-")]
    assert len(journaled) == 1, journaled
    deploy_id = journaled[0].removeprefix("deploy-").removesuffix(".json")
    # Batch 1's host switched while the database was away: two hosts serve 6.0.0.
    serving = {name: ops.serving(name) for name in DEPLOY_MINIONS}
    new = {name for name, (_code, body) in serving.items() if body == "ok 6.0.0"}
    assert len(new) == 2, serving
    assert all(serving[name] == before[name] for name in DEPLOY_MINIONS if name not in new)

    lost_db.db.start()
    status = run("deploy.status", deploy_id)
    assert status.returncode == 0, status
    # deploy.status wrote the journal into the history: it names exactly the hosts that switched.
    assert {h for h, s in hosts().items() if s == "switched"} == new
    assert status.data["hosts_by_status"] == {"switched": 2, "staged": 1}, status.data
    assert status.data["status"] == "switching" and status.data["stale"] is True
    assert status.data["journal_replayed"] == 1 and f"deploy.resume {deploy_id}" in status.data["hint"]
    assert not [name for name in os.listdir(lost_db.journal) if name.startswith("deploy-")]

    resumed = run("deploy.resume", deploy_id)
    assert resumed.returncode == 0, resumed
    assert hosts() == dict.fromkeys(DEPLOY_MINIONS, "switched")
    assert ops.all_serve("6.0.0")


# --------------------------------------------------------------- the master restarted mid-deploy


def test_master_restarted_mid_deploy_ends_resumable_or_rolled_back(
    ops, salt_run, salt_master, deploy_minions
):
    """The salt-run driving the deploy loses the master's bus for one batch.

    Whatever the runner then sees, the deploy ends in a state that
    ``deploy.status`` names and that matches what the hosts serve: rolled back
    (every host on the old release) or stopped with its runner gone
    (``stale``, with the resume/abort hint), which ``deploy.resume`` finishes.
    """
    if not ops.all_serve("6.0.0"):
        # Run alone: a release every host serves first.
        assert ops.deploy("6.0.0").deploy["status"] == "succeeded"
    before = {name: ops.serving(name) for name in DEPLOY_MINIONS}
    url, digest = ops.build("7.0.0", slow=6)
    first = ops.latest_id()
    proc = ops.popen(
        "deploy.run",
        f"app={APP}",
        f"env={ENV}",
        "version=7.0.0",
        f"artifact={url}",
        f"sha256={digest}",
        "batch_size=1",
        "return_timeout=5",
    )
    try:
        deploy_id = ops.wait_for(
            lambda: ops.latest_id() != first and ops.latest_id(), what="the deploy to start"
        )
        ops.wait_for(
            lambda: "switched" in ops.host_statuses(deploy_id).values(),
            timeout=150,
            what="the first batch to switch",
        )
        salt_master.terminate()
        salt_master.start(start_timeout=180)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for name in DEPLOY_MINIONS:
        ops.wait_for(
            lambda n=name: salt_run("manage.alived").returncode == 0 and ops.serving(n)[0] == 200,
            timeout=120,
            what=f"{name} back",
        )
    status = salt_run("deploy.status", deploy_id).data
    assert status["status"] in ("succeeded", "rolled_back", "switching", "rolling_back"), (status, out, err)
    text = (out + err).decode(errors="replace")
    assert "Traceback" not in text, text
    if status["status"] in ("switching", "rolling_back"):
        # The runner stopped (the master did not come back within master_wait, or
        # the runner died with its bus): the status says so and how to go on.
        assert proc.returncode != 0
        assert status["stale"] is True and f"deploy.resume {deploy_id}" in status["hint"], status
        for name, host in status["hosts"].items():
            if host["status"] == "switched":
                assert ops.serving(name) == (200, "ok 7.0.0"), (name, status)
        status = ops.result(salt_run("deploy.resume", deploy_id), deploy_id=deploy_id).deploy
    if status["status"] == "rolled_back":
        # Returns lost with the master's bus count as failures: every switched host went back.
        assert {ops.serving(name) for name in DEPLOY_MINIONS} == set(before.values()), status
        assert set(status["hosts_by_status"]) <= {"rolled_back", "staged", "no_previous"}, status
    else:
        # The runner kept publishing until the master was back: the deploy went on.
        assert status["status"] == "succeeded", status
        assert ops.all_serve("7.0.0")
    assert salt_run("deploy.status", deploy_id).data["stale"] is False
