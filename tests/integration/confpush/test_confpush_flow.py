"""Config push against real minions: push, validate, drift, rollback, refusals, through salt-run."""

import hashlib
import json
import os
import signal
import time

import pytest
import sqlalchemy as sa

from saltops.confpush import lock as cp_lock
from saltops.confpush import store as cstore
from saltops.confpush.schema import host_files, locks, pushes
from saltops.store.schema import audit_log, event_outbox
from tests.integration.confpush.conftest import APP, CP_MINIONS, ENV, SECRET, runner_data, start_push

pytestmark = [pytest.mark.integration]


def _spec(base, port, template=None, health=None):
    return {
        "roots": [base],
        "values": {"port": port, "db_password": "pillar:cpshop:db_password"},
        "files": [
            {
                "path": f"{base}/app.json",
                "template": template or '{\n  "port": {{ values.port }},\n  "env": "{{ cmdb.env }}"\n}\n',
                "mode": "0640",
                "validator": "python3 -m json.tool",
                "reload_cmd": f"touch {base}/reloaded",
            }
        ],
        "health_cmd": health or f"python3 -m json.tool {base}/app.json",
    }


def _set(salt_run, spec):
    ret = salt_run("confpush.set", f"app={APP}", f"env={ENV}", f"spec={json.dumps(spec)}")
    data = runner_data(ret)
    assert ret.returncode == 0, (ret.stdout, ret.stderr)
    return data["version"]


def _read(path):
    with open(path, "rb") as fh:
        return fh.read()


@pytest.fixture(scope="module")
def base(cp_dir):
    return os.path.join(cp_dir, "etc", "cpshop")


def _reactor_pushes(store):
    with store.connect() as conn:
        return conn.execute(
            sa.select(pushes).where(pushes.c.app == APP, pushes.c.kind == "reactor").order_by(pushes.c.id)
        ).all()


@pytest.fixture(scope="module")
def reactor_push(salt_run, cp_minions, base, cmdb_store):
    """The set is stored, then the CMDB gives both hosts the app: the reactor pushes the set to them."""
    version = _set(salt_run, _spec(base, 8080))
    ret = salt_run("cmdb.update", CP_MINIONS[0], 'apps={"cpshop": {"port": 8080}}')
    assert ret.returncode == 0, (ret.stdout, ret.stderr)
    # The reactor runs the push in the master's pool: wait for its record to end.
    for _ in range(180):
        done = [r for r in _reactor_pushes(cmdb_store) if r.status in cstore.TERMINAL]
        if done:
            break
        time.sleep(1)
    return version, done


@pytest.fixture(scope="module")
def first_push(reactor_push, salt_run, base):
    ret = salt_run("cmdb.update", CP_MINIONS[1], 'apps={"cpshop": {"port": 8080}}')
    assert ret.returncode == 0, (ret.stdout, ret.stderr)
    # The reactor may be pushing to the second host meanwhile: a refusal is the lock doing its job.
    for _ in range(120):
        ret = salt_run("confpush.push", f"app={APP}", f"env={ENV}", "batch_size=1")
        data = runner_data(ret)
        if "only one push per app and env" not in str(data.get("error")):
            break
        time.sleep(1)
    assert ret.returncode == 0, (ret.stdout, ret.stderr)
    return reactor_push[0], data, _read(f"{base}/app.json")


def test_a_host_given_the_app_in_the_cmdb_gets_the_set_through_the_reactor(reactor_push, base, cmdb_store):
    _version, done = reactor_push
    assert done, "the reactor did not push the set to the host the CMDB gave the app"
    assert done[0].status == "succeeded" and done[0].actor == "Reactor", dict(done[0]._mapping)
    with cmdb_store.connect() as conn:
        rows = conn.execute(sa.select(host_files).where(host_files.c.push_id == done[0].id)).all()
    assert {r.hostname for r in rows} == {CP_MINIONS[0]}
    assert json.loads(_read(f"{base}/app.json")) == {"port": 8080, "env": "test"}


def test_push_writes_the_rendered_file_on_both_hosts_and_records_its_sha256(first_push, base, cmdb_store):
    _version, data, content = first_push
    assert data["status"] == "succeeded", data
    assert data["pushed"] + data["unchanged"], data
    assert set(data["pushed"] + data["unchanged"]) <= set(CP_MINIONS)
    assert json.loads(content) == {"port": 8080, "env": "test"}
    assert oct(os.stat(f"{base}/app.json").st_mode & 0o777) == "0o640"
    assert os.path.exists(f"{base}/reloaded")
    with cmdb_store.connect() as conn:
        rows = conn.execute(sa.select(host_files).where(host_files.c.push_id == data["id"])).all()
    assert {r.sha256 for r in rows} == {hashlib.sha256(content).hexdigest()}
    # Each batch and the end were announced on the bus through the outbox.
    with cmdb_store.connect() as conn:
        events = conn.execute(
            sa.select(event_outbox.c.tag, event_outbox.c.sent_at).where(
                event_outbox.c.tag.like(f"saltops/confpush/{data['id']}/%")
            )
        ).all()
    assert sorted(e.tag.rsplit("/", 1)[1] for e in events) == ["batch", "batch", "started", "succeeded"]
    assert all(e.sent_at is not None for e in events)


def test_diff_shows_nothing_after_a_push_and_a_diff_for_a_new_version(first_push, salt_run, base):
    ret = salt_run("confpush.diff", f"app={APP}", f"env={ENV}")
    data = runner_data(ret)
    assert ret.returncode == 0 and data["changes"] == [], data
    _set(salt_run, _spec(base, 9090))
    data = runner_data(salt_run("confpush.diff", f"app={APP}", f"env={ENV}"))
    assert data["changes"] == sorted(CP_MINIONS)
    diff = data["hosts"][CP_MINIONS[0]]["files"][f"{base}/app.json"]["diff"]
    assert '-  "port": 8080,' in diff and '+  "port": 9090,' in diff
    assert _read(f"{base}/app.json") == first_push[2]


def test_a_failing_validator_leaves_the_live_file_as_it_was(first_push, salt_run, base):
    before = _read(f"{base}/app.json")
    _set(salt_run, _spec(base, 8080, template='{"port": {{ values.port }},,}\n'))
    ret = salt_run("confpush.push", f"app={APP}", f"env={ENV}", "batch_size=1")
    data = runner_data(ret)
    assert ret.returncode == 1 and data["status"] == "failed", data
    assert "batch 0 failed" in data["error"]
    assert data["not_reached"], data
    assert _read(f"{base}/app.json") == before


def test_a_template_that_does_not_render_is_refused_naming_file_and_line(
    first_push, salt_run, base, cmdb_store
):
    _set(salt_run, _spec(base, 8080, template='{\n  "port": {{ values.nope }}\n}\n'))
    with cmdb_store.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(pushes)).scalar()
    ret = salt_run("confpush.push", f"app={APP}", f"env={ENV}")
    data = runner_data(ret)
    assert ret.returncode == 1 and data["result"] is False, data
    assert f"{base}/app.json line 2" in data["error"] and "no host was touched" in data["error"]
    with cmdb_store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(pushes)).scalar() == count


def test_rollback_restores_byte_identical_files(first_push, salt_run, base):
    version, _data_first, content = first_push
    _set(salt_run, _spec(base, 7070))
    assert runner_data(salt_run("confpush.push", f"app={APP}", f"env={ENV}"))["status"] == "succeeded"
    assert _read(f"{base}/app.json") != content
    ret = salt_run("confpush.rollback", f"app={APP}", f"env={ENV}", f"to={version}")
    data = runner_data(ret)
    assert ret.returncode == 0 and data["status"] == "succeeded", data
    assert data["rendered_anew"] == []
    assert _read(f"{base}/app.json") == content


def test_drift_finds_a_hand_edit(first_push, salt_run, base):
    path = f"{base}/app.json"
    assert runner_data(salt_run("confpush.drift", f"app={APP}", f"env={ENV}"))["drifted"] == {}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(" ")
    data = runner_data(salt_run("confpush.drift", f"app={APP}", f"env={ENV}"))
    assert data["drifted"] == {name: [path] for name in CP_MINIONS}, data


def test_a_failing_health_check_puts_the_previous_file_back(first_push, salt_run, base):
    before = _read(f"{base}/app.json")
    _set(salt_run, _spec(base, 6060, health="false"))
    ret = salt_run("confpush.push", f"app={APP}", f"env={ENV}", "batch_size=1")
    data = runner_data(ret)
    assert ret.returncode == 1 and data["status"] == "failed", data
    failed_host = next(iter(data["failed"]))
    assert "confpush-health" in data["failed"][failed_host]
    assert data["restored"] == [failed_host]
    assert _read(f"{base}/app.json") == before


def test_secrets_are_resolved_on_the_minion_and_never_stored_or_shown(first_push, salt_run, base, cmdb_store):
    spec = _spec(base, 8080)
    spec["values"]["db_password"] = "sdb://cpsecrets/db_password"
    spec["files"].append(
        {"path": f"{base}/secret.conf", "template": "password={{ values.db_password }}\n", "mode": "0600"}
    )
    # A per-host path: each minion writes its own file, with its own CMDB data.
    spec["files"].append({"path": f"{base}/hosts/{{hostname}}.conf", "template": "idc={{ cmdb.idc }}\n"})
    _set(salt_run, spec)
    diff = salt_run("confpush.diff", f"app={APP}", f"env={ENV}")
    assert SECRET not in diff.stdout and runner_data(diff)["changes"], diff.stdout
    ret = salt_run("confpush.push", f"app={APP}", f"env={ENV}")
    data = runner_data(ret)
    assert ret.returncode == 0 and data["status"] == "succeeded", data
    assert _read(f"{base}/secret.conf") == f"password={SECRET}\n".encode()
    assert _read(f"{base}/hosts/{CP_MINIONS[0]}.conf") == b"idc=bj-idc1\n"
    assert _read(f"{base}/hosts/{CP_MINIONS[1]}.conf") == b"idc=sh-idc1\n"
    assert SECRET not in ret.stdout
    history = salt_run("confpush.history", f"app={APP}", f"env={ENV}", "limit=1")
    assert SECRET not in history.stdout
    with cmdb_store.connect() as conn:
        stored = conn.execute(sa.select(host_files.c.content).where(host_files.c.push_id == data["id"])).all()
    assert stored and all(SECRET not in row.content for row in stored)
    # A missing secret fails that host's state on the minion; the file stays as it was.
    spec["values"]["db_password"] = "sdb://cpsecrets/nope"
    _set(salt_run, spec)
    data = runner_data(salt_run("confpush.push", f"app={APP}", f"env={ENV}", "batch_size=1"))
    assert data["status"] == "failed" and "is not set on this minion" in str(data["failed"]), data
    assert _read(f"{base}/secret.conf") == f"password={SECRET}\n".encode()


def test_salt_api_acls_ops_pushes_viewer_diffs_and_reads_history_deployer_nothing(
    first_push, api, base, cmdb_store
):
    # viewer: diff and history, nothing that changes a host or the store.
    assert api.run("viewer", "confpush.history", app=APP, env=ENV).status_code == 200
    assert api.run("viewer", "confpush.diff", app=APP, env=ENV).status_code == 200
    for fun, extra in (
        ("confpush.push", {}),
        ("confpush.rollback", {"to": 1}),
        ("confpush.set", {"spec": "{}"}),
        ("confpush.migrate", {"to_env": "prod", "confirm": True}),
        ("confpush.resume", {}),
        ("confpush.abort", {}),
        ("confpush.drift", {}),
    ):
        assert api.run("viewer", fun, app=APP, env=ENV, **extra).status_code == 401, fun
    # deployer: nothing of config push.
    for fun in ("confpush.history", "confpush.diff", "confpush.push", "confpush.versions"):
        assert api.run("deployer", fun, app=APP, env=ENV).status_code == 401, fun
    # ops: stores a set and pushes it; both are audited as ops, the eauth user.
    stored = api.run_data("ops", "confpush.set", app=APP, env=ENV, spec=_spec(base, 3030))
    pushed = api.run_data("ops", "confpush.push", app=APP, env=ENV)
    assert pushed["status"] == "succeeded" and pushed["version"] == stored["version"], pushed
    assert json.loads(_read(f"{base}/app.json"))["port"] == 3030
    with cmdb_store.connect() as conn:
        push = cstore.get_push(conn, pushed["id"])
        actors = conn.execute(
            sa.select(audit_log.c.actor, audit_log.c.action).where(
                audit_log.c.object_type == "confpush_push", audit_log.c.object_id == str(pushed["id"])
            )
        ).all()
    assert push["actor"] == "ops"
    assert {(a.actor, a.action) for a in actors} == {
        ("ops", "confpush.push"),
        ("ops", "confpush.push.succeeded"),
    }


def test_a_second_push_of_the_same_set_is_refused_while_one_runs(first_push, salt_run, base, cmdb_store):
    # A push held by a live process (this one) owns the lock.
    with cmdb_store.begin() as conn:
        push_id = cstore.create_push(
            conn, "tests", APP, ENV, 1, "push", {"total": 2, "batches": []}, cp_lock.me()
        )
        cp_lock.acquire(conn, APP, ENV, push_id, 120)
    before = _read(f"{base}/app.json")
    try:
        ret = salt_run("confpush.push", f"app={APP}", f"env={ENV}")
        data = runner_data(ret)
        assert ret.returncode == 1 and data["result"] is False, data
        assert f"config push {push_id} of {APP}/{ENV}" in data["error"]
        assert "only one push per app and env" in data["error"]
        assert _read(f"{base}/app.json") == before
    finally:
        with cmdb_store.begin() as conn:
            conn.execute(locks.delete().where(locks.c.push_id == push_id))
            cstore.finish_push(conn, "tests", push_id, cstore.FAILED, "test lock")


def _wait_idle(salt_cli):
    """Until no state run is left on our minions (bounded): a killed runner's jobs finish there."""
    for _ in range(120):
        busy = False
        for name in CP_MINIONS:
            ret = salt_cli.run("saltutil.running", minion_tgt=name)
            busy = busy or bool(ret.data)
        if not busy:
            return
        time.sleep(1)
    raise AssertionError("the minions never finished the killed push's state runs")


def test_a_push_whose_runner_was_killed_is_taken_over_and_no_file_is_half_written(
    first_push, salt_run, salt_master, salt_cli, base, cmdb_store
):
    _set(salt_run, _spec(base, 5050, health="sleep 6"))
    runner = start_push(salt_master, APP, ENV)
    killed = None
    try:
        # Kill it once its push is recorded and its batch published.
        for _ in range(600):
            with cmdb_store.connect() as conn:
                row = conn.execute(
                    sa.select(pushes).where(pushes.c.app == APP, pushes.c.status == "running")
                ).first()
            if row is not None and row.owner and row.owner.endswith(f":{runner.pid}"):
                killed = row.id
                time.sleep(1)
                break
            time.sleep(0.1)
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.communicate()
    assert killed is not None, "the push never started"
    _wait_idle(salt_cli)
    content = _read(f"{base}/app.json")
    assert json.loads(content)["port"] in (8080, 5050, 7070, 6060), content
    _set(salt_run, _spec(base, 5151))
    ret = salt_run("confpush.push", f"app={APP}", f"env={ENV}")
    data = runner_data(ret)
    assert ret.returncode == 0 and data["status"] == "succeeded", data
    assert json.loads(_read(f"{base}/app.json")) == {"port": 5151, "env": "test"}
    with cmdb_store.connect() as conn:
        old = cstore.get_push(conn, killed)
    assert old["status"] == cstore.INTERRUPTED and f"lock taken over by push {data['id']}" in old["error"]


def test_migrate_shows_the_diff_first_and_pushes_only_when_confirmed(first_push, salt_run, base):
    _set(salt_run, _spec(base, 4040))
    before = _read(f"{base}/app.json")
    ret = salt_run("confpush.migrate", f"app={APP}", f"env={ENV}", f"hosts={CP_MINIONS[0]}")
    preview = runner_data(ret)
    assert ret.returncode == 0 and "confirm=True" in preview["confirm"], preview
    assert preview["changes"] == [CP_MINIONS[0]]
    assert '+  "port": 4040,' in preview["hosts"][CP_MINIONS[0]]["files"][f"{base}/app.json"]["diff"]
    assert _read(f"{base}/app.json") == before
    ret = salt_run("confpush.migrate", f"app={APP}", f"env={ENV}", f"hosts={CP_MINIONS[0]}", "confirm=True")
    data = runner_data(ret)
    assert ret.returncode == 0 and data["status"] == "succeeded" and data["pushed"] == [CP_MINIONS[0]], data
    assert json.loads(_read(f"{base}/app.json"))["port"] == 4040
    refused = runner_data(salt_run("confpush.migrate", f"app={APP}", f"env={ENV}", "to_env=prod"))
    assert refused["result"] is False and "no online host runs cpshop in prod" in refused["error"]
