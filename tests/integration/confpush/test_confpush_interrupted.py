"""Pushes cut short on real daemons: a runner killed mid-batch (resumed or aborted), a minion killed mid-batch.

What runs (module scope): a salt-master of its own (``cpstop``, configured
like every SaltOps master, ``return_timeout`` 10 s so that Salt gives up on a
dead minion within about half a minute) over its own SQLite CMDB, and two minions, ``k1`` (IDC
``bj-idc1``) and ``k2`` (IDC ``sh-idc1``), both running app ``cpstop`` in env
``test``.  With ``batch_size=1`` the planner puts ``k1`` in batch 0 and
``k2`` in batch 1.  Each host writes its own file (``{hostname}`` in the
path), and the health check of a changed file first leaves a mark, then
sleeps: the tests stop things while a batch is visibly running.

The module also covers a rollback several versions back and a migration
to another env (the CMDB moves ``k2`` to ``staging`` in the last test).
"""

import json
import os
import signal

import psutil
import pytest
import sqlalchemy as sa

from saltops.confpush import store as cstore
from saltops.confpush.schema import host_files, locks, pushes
from saltops.lab.seed import seed
from saltops.store import get_store
from saltops.store.schema import audit_log
from tests.integration.confpush.conftest import cp_record, runner_data, start_push
from tests.support.haproxy import wait_for
from tests.support.saltenv import started_minions

pytestmark = [pytest.mark.integration]

APP, ENV = "cpstop", "test"
K1, K2 = "k1.cpstop.test", "k2.cpstop.test"
PLACES = {K1: ("bj-idc1", "telecom"), K2: ("sh-idc1", "unicom")}
TEMPLATE = '{"port": {{ values.port }}, "env": "{{ cmdb.env }}", "host": "{{ hostname }}"}\n'


@pytest.fixture(scope="module")
def workdir(cp_dir):
    path = os.path.join(cp_dir, "stop")
    os.makedirs(path)
    return path


@pytest.fixture(scope="module")
def db_url(workdir):
    url = f"sqlite:///{workdir}/cmdb.db"
    seed(url, hosts=[cp_record(name, *PLACES[name], ENV, {APP: {}}) for name in (K1, K2)])
    return url


@pytest.fixture(scope="module")
def store(db_url):
    return get_store(db_url)


@pytest.fixture(scope="module")
def master(saltops_master_factory, db_url):
    # Salt gives up on a dead minion after return_timeout plus gather_job_timeout
    # (its find_job check): short enough for the test, long enough for a loaded machine.
    extra = {"gather_job_timeout": 20, "saltops": {"confpush": {"return_timeout": 10}}}
    factory = saltops_master_factory("cpstop", db_url=db_url, extra=extra)
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="module")
def minions(master):
    with started_minions(master, (K1, K2)) as factories:
        yield factories


@pytest.fixture(scope="module")
def run(master, minions):
    cli = master.salt_run_cli(timeout=300)

    def call(fun, *args):
        ret = cli.run(fun, *args)
        return ret, runner_data(ret)

    return call


@pytest.fixture(scope="module")
def base(workdir):
    return os.path.join(workdir, "etc", APP)


def _path(base, host):
    return f"{base}/{host}/app.json"


def _read(path):
    with open(path, "rb") as fh:
        return fh.read()


def _spec(base, port, sleep=0):
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
    }
    if sleep:
        # Runs only when the file changed: the mark says the batch's state run is under way.
        spec["health_cmd"] = f"touch {base}/{{hostname}}.running && sleep {sleep}"
    return spec


def _set(run, spec, env=ENV):
    ret, data = run("confpush.set", f"app={APP}", f"env={env}", f"spec={json.dumps(spec)}")
    assert ret.returncode == 0, (ret.stdout, ret.stderr)
    return data["version"]


def _content(port, host, env=ENV):
    return f'{{"port": {port}, "env": "{env}", "host": "{host}"}}\n'.encode()


def _push_row(store, push_id):
    with store.connect() as conn:
        return cstore.get_push(conn, push_id)


def _file_rows(store, push_id):
    with store.connect() as conn:
        rows = conn.execute(sa.select(host_files).where(host_files.c.push_id == push_id)).all()
    return {r.hostname: (r.status, r.error) for r in rows}


def _lock_holder(store):
    with store.connect() as conn:
        return conn.execute(sa.select(locks.c.push_id).where(locks.c.app == APP, locks.c.env == ENV)).scalar()


def _wait(predicate, timeout, what):
    found = wait_for(predicate, timeout=timeout, step=0.2)
    assert found, f"timed out after {timeout}s waiting for {what}"
    return found


def _running_push(store, pid):
    """The push the runner ``pid`` drives, once its batch 0 is published."""
    with store.connect() as conn:
        row = conn.execute(sa.select(pushes).where(pushes.c.app == APP, pushes.c.status == "running")).first()
    if row is not None and (row.owner or "").endswith(f":{pid}") and row.batch == 0 and row.jobs:
        return row.id
    return None


def _kill_runner_in_batch_0(master, store, base):
    """Start a push; SIGKILL its salt-run while batch 0 (``k1``) runs on the minion. Returns the push id."""
    mark = f"{base}/{K1}.running"
    if os.path.exists(mark):
        os.unlink(mark)
    runner = start_push(master, APP, ENV, "batch_size=1")
    try:
        push_id = _wait(lambda: _running_push(store, runner.pid), 120, "the push's batch 0 to be published")
        _wait(lambda: os.path.exists(mark), 120, "k1's state run to reach its health check")
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.communicate()
    return push_id


@pytest.fixture(scope="module")
def first(run, base):
    """Version 1 pushed to both hosts: what every later test starts from."""
    version = _set(run, _spec(base, 1000))
    ret, data = run("confpush.push", f"app={APP}", f"env={ENV}")
    assert ret.returncode == 0 and data["status"] == "succeeded", data
    return version


def test_resume_with_no_stopped_push_says_so(first, run):
    ret, data = run("confpush.resume", f"app={APP}", f"env={ENV}")
    assert ret.returncode == 1 and data["result"] is False, data
    assert f"no config push of {APP}/{ENV} is unfinished" in data["error"]


def test_a_push_whose_runner_was_killed_mid_batch_is_resumed_byte_for_byte(first, master, run, store, base):
    _set(run, _spec(base, 2000, sleep=4))
    push_id = _kill_runner_in_batch_0(master, store, base)
    # The runner is gone; the push still holds the lock and says so.
    assert _push_row(store, push_id)["status"] == "running"
    assert _lock_holder(store) == push_id
    _ret, history = run("confpush.history", f"app={APP}", f"env={ENV}", "limit=1")
    assert history[0]["id"] == push_id and history[0]["runner_alive"] is False, history
    assert "confpush.resume" in history[0]["hint"]
    # A push started meanwhile would take the lock over; the user resumes instead.
    ret, data = run("confpush.resume", f"app={APP}", f"env={ENV}")
    assert ret.returncode == 0 and data["status"] == "succeeded", data
    assert data["id"] == push_id and sorted(data["pushed"]) == [K1, K2], data
    for host in (K1, K2):
        assert _read(_path(base, host)) == _content(2000, host)
    assert _file_rows(store, push_id) == {K1: ("pushed", None), K2: ("pushed", None)}
    assert _lock_holder(store) is None
    with store.connect() as conn:
        actions = conn.execute(
            sa.select(audit_log.c.action)
            .where(audit_log.c.object_type == "confpush_push", audit_log.c.object_id == str(push_id))
            .order_by(audit_log.c.id)
        ).all()
    assert [a.action for a in actions] == ["confpush.push", "confpush.resume", "confpush.push.succeeded"]


def test_a_push_whose_runner_was_killed_mid_batch_is_aborted_cleanly(first, master, run, store, base):
    before = {h: _read(_path(base, h)) for h in (K1, K2)}
    _set(run, _spec(base, 3000, sleep=4))
    push_id = _kill_runner_in_batch_0(master, store, base)
    ret, data = run("confpush.abort", f"app={APP}", f"env={ENV}", f"id={push_id}")
    assert ret.returncode == 0 and data["status"] == "aborted", data
    # The batch that was running is settled from Salt's job cache; no other host is touched.
    assert data["pushed"] == [K1] and data["not_reached"] == [K2], data
    assert _read(_path(base, K1)) == _content(3000, K1)
    assert _read(_path(base, K2)) == before[K2]
    assert "confpush.rollback to=" in data["comment"], data
    assert _file_rows(store, push_id) == {K1: ("pushed", None), K2: ("not_reached", None)}
    assert _push_row(store, push_id)["status"] == "aborted"
    # The lock is free: nothing left to resume, and the next push runs at once.
    assert _lock_holder(store) is None
    ret, data = run("confpush.abort", f"app={APP}", f"env={ENV}", f"id={push_id}")
    assert ret.returncode == 1 and f"config push {push_id} of {APP}/{ENV} is aborted" in data["error"], data


def test_a_minion_killed_mid_batch_fails_the_push_and_no_file_is_half_written(
    first, master, minions, run, store, base
):
    # Both hosts hold one version (the previous test left k1 ahead).
    ret, data = run("confpush.push", f"app={APP}", f"env={ENV}")
    assert ret.returncode == 0 and data["status"] == "succeeded", data
    before = {h: _read(_path(base, h)) for h in (K1, K2)}
    _set(run, _spec(base, 4000, sleep=60))
    mark = f"{base}/{K1}.running"
    if os.path.exists(mark):
        os.unlink(mark)
    runner = start_push(master, APP, ENV, "batch_size=1")
    try:
        _wait(lambda: os.path.exists(mark), 120, "k1's state run to reach its health check")
        victim = psutil.Process(minions[K1].pid)
        for proc in [victim, *victim.children(recursive=True)]:
            proc.kill()
        out, _ = runner.communicate(timeout=240)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    data = runner_data(out)
    assert runner.returncode == 1 and data["status"] == "failed", data
    assert "no answer from the minion" in data["failed"][K1], data
    assert data["not_reached"] == [K2] and data["pushed"] == [], data
    # Salt's write is atomic: the whole old file or the whole new one, never a mix.
    assert _read(_path(base, K1)) in (before[K1], _content(4000, K1))
    assert _read(_path(base, K2)) == before[K2]
    rows = _file_rows(store, data["id"])
    assert rows[K1][0] == "failed" and "no answer from the minion" in rows[K1][1]
    assert rows[K2] == ("not_reached", None)
    assert _lock_holder(store) is None
    _ret, history = run("confpush.history", f"app={APP}", f"env={ENV}", "limit=1")
    assert history[0]["status"] == "failed" and "batch 0 failed on k1" in history[0]["error"], history
    # Back up, the minion is put right by the next push.
    minions[K1].terminate()
    minions[K1].start(start_timeout=120)
    _set(run, _spec(base, 4100))
    # A restarted minion may miss the first jobs while it reconnects: push until it answers.
    for _ in range(30):
        _ret, data = run("confpush.push", f"app={APP}", f"env={ENV}")
        if data.get("status") == "succeeded":
            break
    assert data["status"] == "succeeded", data
    assert _read(_path(base, K1)) == _content(4100, K1)


def test_rollback_to_a_version_several_pushes_back_is_byte_identical(first, run, store, base):
    with store.connect() as conn:
        recorded = cstore.last_pushed(conn, APP, ENV, [K1, K2], set_version=first)
    expected = {h: recorded[h][_path(base, h)]["text"].encode() for h in (K1, K2)}
    assert expected == {h: _content(1000, h) for h in (K1, K2)}
    _ret, versions = run("confpush.versions", f"app={APP}", f"env={ENV}")
    assert versions[0]["version"] >= first + 3, versions
    ret, data = run("confpush.rollback", f"app={APP}", f"env={ENV}", f"to={first}")
    assert ret.returncode == 0 and data["status"] == "succeeded", data
    assert data["rendered_anew"] == [] and data["version"] == first, data
    for host in (K1, K2):
        assert _read(_path(base, host)) == expected[host]


def test_migrate_to_another_env_shows_the_diff_then_stores_and_pushes_when_confirmed(run, store, base, first):
    ret, _data = run("cmdb.update", K2, "env=staging")
    assert ret.returncode == 0, (ret.stdout, ret.stderr)
    before = _read(_path(base, K2))
    ret, preview = run("confpush.migrate", f"app={APP}", f"env={ENV}", "to_env=staging")
    assert ret.returncode == 0 and "confirm=True" in preview["confirm"], preview
    assert preview["to"] == {"env": "staging", "version": None}
    assert preview["set_changes"]["added"] == [f"{base}/{{hostname}}/app.json"]
    diff = preview["hosts"][K2]["files"][_path(base, K2)]["diff"]
    assert '"env": "staging"' in diff, diff
    # Nothing stored, nothing written.
    ret, refused = run("confpush.show", f"app={APP}", "env=staging")
    assert ret.returncode == 1 and "no config set for cpstop in staging" in refused["error"]
    assert _read(_path(base, K2)) == before
    ret, data = run("confpush.migrate", f"app={APP}", f"env={ENV}", "to_env=staging", "confirm=True")
    assert ret.returncode == 0 and data["stored_version"] == 1, data
    assert data["push"]["status"] == "succeeded" and data["push"]["pushed"] == [K2], data
    _ret, shown = run("confpush.show", f"app={APP}", f"env={ENV}")
    _ret, copied = run("confpush.show", f"app={APP}", "env=staging")
    assert copied["spec"] == shown["spec"]
    assert json.loads(_read(_path(base, K2)))["env"] == "staging"
    with store.connect() as conn:
        actions = [r.action for r in conn.execute(sa.select(audit_log.c.action)).all()]
    assert "confpush.migrate" in actions
