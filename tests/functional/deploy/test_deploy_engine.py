"""The deploy driver driving the real minion module (through Salt's loader) on a real database.

Each "host" is a CMDB record whose app settings give it its own folder and
port on this machine; the executor runs ``saltops_release`` for it through
``salt.client.Caller``.  Daemons and the network path are covered by
tests/integration/deploy.
"""

import os

import deploy_appkit as kit
import pytest
import sqlalchemy as sa

from saltops import config
from saltops.cmdb import api, repo
from saltops.cmdb.balancers import outcome_of
from saltops.cmdb.model import Rules
from saltops.deploy import api as deploy_api
from saltops.deploy import config as dconfig
from saltops.deploy import history, lock, slots
from saltops.deploy.schema import runs
from saltops.errors import Conflict, NotFound
from saltops.store import outbox
from saltops.store.engine import Store
from saltops.store.schema import event_outbox


class Balancers:
    """In place of :func:`saltops.cmdb.balancers.update` (the balancer update the runner wires in).

    The plan is the CMDB's own (``saltops.cmdb.api.refresh_plan``: which
    balancers the flip's CMDB version names); the state run's result is chosen
    by the test (``fail``).  Real balancers applying the real lb formula are in
    tests/integration/deploy/test_deploy_blue_green.py.  Each call records the
    plan and the live slots the balancers' pillar would read at that moment.
    """

    def __init__(self, store, conf):
        self.store, self.conf = store, conf
        self.calls = []
        self.fail = set()
        # Per call, in order: True (every balancer applies) or False (all fail); then ``fail``.
        self.script = []

    def __call__(self, cmdb_version):
        plan = api.refresh_plan(self.store, self.conf, cmdb_version)
        if self.script:
            self.fail = set() if self.script.pop(0) else set(plan["apply"])
        with self.store.connect() as conn:
            live = slots.live(conn)
        self.calls.append({"version": cmdb_version, "apply": plan["apply"], "live": live})
        results = {}
        for name in plan["apply"]:
            ok = name not in self.fail
            results[name] = {
                "result": ok,
                "retcode": 0 if ok else 2,
                "states": 3,
                "changed": ["lb-config-file-file-managed"] if ok else [],
                "failed": {} if ok else {"lb-config-file-file-managed": "check_cmd execution failed"},
                "errors": [],
            }
        # The waited-for refresh's return, turned into the typed update as the real one is.
        return outcome_of(
            {
                "version": cmdb_version,
                "balancers": plan["balancers"],
                "refreshed": sorted(plan["apply"]),
                "applied": {name: ",".join(states) for name, states in plan["apply"].items()},
                "apply_skipped": plan["skipped"],
                "apply_test": False,
                "apply_results": results,
            }
        )


HOSTS = [
    ("w1.deploy.test", "bj-idc1", ["telecom"]),
    ("w2.deploy.test", "bj-idc1", ["unicom"]),
    ("w3.deploy.test", "sh-idc1", ["telecom"]),
    ("w4.deploy.test", "sh-idc1", ["unicom"]),
]


@pytest.fixture
def env(workdir, artifacts, caller, request):
    base = os.path.join(workdir, "engine", request.node.name[:40])
    os.makedirs(base)
    store = Store(f"sqlite:///{base}/saltops.db")
    store.migrate()
    conf = config.load({})
    records = []
    for name, idc, lines in HOSTS:
        slots = {"blue": {"port": kit.free_port()}, "green": {"port": kit.free_port()}}
        settings = kit.app_settings(os.path.join(base, name), kit.free_port(), slots=slots, keep=2)
        # Enough for an instance to start on a loaded machine (a broken one answers 500 at once).
        settings["health_retries"] = 30
        records.append(
            {
                "hostname": name,
                "ip": "10.0.0.1",
                "lines": {line: "10.0.0.1" for line in lines},
                "roles": ["web"],
                "platform": "Debian-12",
                "machine_type": "vm",
                "idc": idc,
                "env": "test",
                "status": "online",
                "owner": "web-team",
                "apps": {"shop": settings},
            }
        )
    # Hosts a deploy must leave alone: offline, another env, another app.
    other = dict(records[0], hostname="off.deploy.test", status="offline")
    staging = dict(records[0], hostname="stg.deploy.test", env="staging")
    noapp = dict(records[0], hostname="db.deploy.test", apps={"db": {}})
    balancer = dict(records[0], hostname="lb.deploy.test", roles=["lb"], apps={})
    repo.write(store, "tester", records + [other, staging, noapp, balancer], rules=Rules.from_config(conf))

    class Env:
        pass

    e = Env()
    e.store, e.conf, e.records = store, conf, {r["hostname"]: r for r in records}
    e.dconf = dconfig.load({"deploy": {"batch_size": 2, "max_share": 0.5, "heartbeat_interval": 1}})
    e.executor = kit.CallerExecutor(caller)
    e.balancers = Balancers(store, conf)
    e.fired = []
    e.progress = []

    def deploy(version, broken=False, sha=None, actor="alice", **overrides):
        path, digest = kit.build_artifact(artifacts.directory, version, broken=broken)
        request = deploy_api.validate_request("shop", "test", version, artifacts.url(path), sha or digest)
        deploy_id = deploy_api.start(store, e.dconf, request, actor, overrides)
        return run(deploy_id)

    def run(deploy_id):
        driver = deploy_api.Driver(
            store,
            e.dconf,
            deploy_id,
            e.executor,
            lambda t, d: e.fired.append((t, d)),
            lambda p, d: e.progress.append((p, d)),
            e.balancers,
        )
        return driver.execute()

    def serving(name, port=None):
        return kit.get(f"http://127.0.0.1:{port or e.records[name]['apps']['shop']['port']}/healthz")

    e.deploy, e.run, e.serving = deploy, run, serving
    yield e
    kit.stop_apps(base)
    store.dispose()


def _phases(e, deploy_id):
    return [d["phase"] for t, d in e.fired if t.startswith(f"saltops/deploy/{deploy_id}/")]


def test_rolling_deploy_and_history(env):
    first = env.deploy("1.0")
    assert first["status"] == "succeeded", first
    second = env.deploy("2.0", actor="bob")
    assert second["status"] == "succeeded", second
    for name in env.records:
        assert env.serving(name) == (200, "ok 2.0")
    # Only the online hosts of the env running the app.
    assert sorted(second["hosts"]) == sorted(env.records)
    assert all(h["previous_version"] == "1.0" and h["status"] == "switched" for h in second["hosts"].values())
    assert [b["status"] for b in second["batches"]] == ["done", "done"]
    # Batches mix IDCs and lines: max_share 0.5 of 2 hosts per group = 1 per batch.
    for batch in second["batches"]:
        idcs = {env.records[h]["idc"] for h in batch["hosts"]}
        assert idcs == {"bj-idc1", "sh-idc1"}
    assert second["actor"] == "bob"
    assert _phases(env, second["id"]) == [
        "created",
        "staging",
        "switching",
        "batch",
        "switching",
        "batch",
        # The last batch's results and the final status are one transaction.
        "succeeded",
    ]
    assert outbox.pending_count(env.store) == 0
    with env.store.connect() as conn:
        listed = history.list_runs(conn, app="shop", env="test")
        assert [r["version"] for r in listed] == ["2.0", "1.0"]
        assert lock.holder(conn, "shop", "test") is None
    phases = [p for p, _ in env.progress]
    assert "batch" in phases and phases[-1] == "succeeded"


def test_bad_checksum_switches_nothing(env):
    assert env.deploy("1.0")["status"] == "succeeded"
    result = env.deploy("2.0", sha="f" * 64)
    assert result["status"] == "failed"
    assert "checksum mismatch on 4 host(s)" in result["error"] and "nothing was switched" in result["error"]
    assert set(result["hosts_by_status"]) == {"stage_failed"}
    assert not any(fun.endswith(".switch") for fun, _ in env.executor.calls[-4:])
    for name in env.records:
        assert env.serving(name) == (200, "ok 1.0")
    with env.store.connect() as conn:
        assert lock.holder(conn, "shop", "test") is None


def test_canary_health_failure_rolls_back_the_canary_only(env):
    assert env.deploy("1.0")["status"] == "succeeded"
    env.executor.calls.clear()
    result = env.deploy("1.1", broken=True, strategy="canary")
    assert result["status"] == "rolled_back", result
    assert "canary failed" in result["error"] and "health check" in result["error"]
    canary = result["batches"][0]["hosts"]
    assert len(canary) == 1
    assert result["hosts"][canary[0]]["status"] == "rolled_back"
    switched = [h for fun, h in env.executor.calls if fun.endswith(".switch")]
    assert switched == canary
    for name in env.records:
        assert env.serving(name) == (200, "ok 1.0")
    assert [b["status"] for b in result["batches"]] == ["failed"] + ["pending"] * (len(result["batches"]) - 1)


def test_failures_beyond_max_failures_roll_back_switched_hosts(env):
    assert env.deploy("1.0")["status"] == "succeeded"
    # The second batch's first host does not answer.
    plan = deploy_api.preview(env.store, env.dconf, "shop", "test")
    victim = plan["batches"][1]["hosts"][0]
    env.executor.down = set()
    original = env.executor.call

    def call(fun, hostnames, args, settings_by_host, timeout):
        env.executor.down = {victim} if fun.endswith(".switch") else set()
        return original(fun, hostnames, args, settings_by_host, timeout)

    env.executor.call = call
    result = env.deploy("2.0")
    assert result["status"] == "rolled_back", result
    assert victim in result["error"] and "max_failures=0" in result["error"]
    assert result["hosts"][victim]["status"] == "rolled_back"
    first_batch = plan["batches"][0]["hosts"]
    assert all(result["hosts"][h]["status"] == "rolled_back" for h in first_batch)
    for name in env.records:
        assert env.serving(name) == (200, "ok 1.0")


def test_a_tolerated_failure_is_rolled_back_alone(env):
    assert env.deploy("1.0")["status"] == "succeeded"
    plan = deploy_api.preview(env.store, env.dconf, "shop", "test")
    victim = plan["batches"][0]["hosts"][0]
    original = env.executor.call

    def call(fun, hostnames, args, settings_by_host, timeout):
        env.executor.down = {victim} if fun.endswith(".switch") else set()
        return original(fun, hostnames, args, settings_by_host, timeout)

    env.executor.call = call
    result = env.deploy("2.0", max_failures=1)
    assert result["status"] == "succeeded", result["error"]
    assert result["hosts"][victim]["status"] == "rolled_back"
    assert env.serving(victim) == (200, "ok 1.0")
    others = [h for h in env.records if h != victim]
    assert all(env.serving(h) == (200, "ok 2.0") for h in others)


def test_pause_resume_and_the_lock(env):
    assert env.deploy("1.0")["status"] == "succeeded"
    paused = env.deploy("2.0", strategy="canary", pause=True)
    assert paused["status"] == "paused"
    canary = paused["batches"][0]["hosts"][0]
    assert env.serving(canary) == (200, "ok 2.0")
    # A second deploy of the same app and env is refused while paused.
    _path, digest = kit.build_artifact(env.executor.caller.opts["cachedir"], "3.0")
    request = deploy_api.validate_request("shop", "test", "3.0", "http://x/shop-3.0.tar.gz", digest)
    with pytest.raises(Conflict, match=r"deploy \d+ of shop 2.0 to test is in progress \(paused"):
        deploy_api.start(env.store, env.dconf, request, "carol")
    with env.store.connect() as conn:
        assert len(history.list_runs(conn, app="shop")) == 2
    resumed = deploy_api.resume(env.store, env.dconf, paused["id"], env.executor)
    assert resumed["status"] == "succeeded"
    assert all(env.serving(h) == (200, "ok 2.0") for h in env.records)
    with pytest.raises(Conflict, match="nothing to resume"):
        deploy_api.resume(env.store, env.dconf, paused["id"], env.executor)


def test_abort_a_paused_deploy_rolls_back(env):
    assert env.deploy("1.0")["status"] == "succeeded"
    paused = env.deploy("2.0", strategy="canary", pause=True)
    result = deploy_api.abort(env.store, env.dconf, paused["id"], env.executor)
    assert result["status"] == "aborted"
    assert all(env.serving(h) == (200, "ok 1.0") for h in env.records)
    with env.store.connect() as conn:
        assert lock.holder(conn, "shop", "test") is None


def test_stale_lock_is_taken_over(env):
    assert env.deploy("1.0")["status"] == "succeeded"
    _path, digest = kit.build_artifact(env.executor.caller.opts["cachedir"], "2.0")
    request = deploy_api.validate_request("shop", "test", "2.0", "http://127.0.0.1:9/x.tar.gz", digest)
    dead = deploy_api.start(env.store, env.dconf, request, "alice")
    with env.store.begin() as conn:
        # Its runner died: a pid that does not exist on this host.
        conn.execute(
            runs.update().where(runs.c.id == dead).values(owner=lock.me().rsplit(":", 1)[0] + ":999999999")
        )
    assert deploy_api.status(env.store, env.dconf, dead)["stale"] is True
    assert deploy_api.status(env.store, env.dconf)[0]["stale"] is True
    result = env.deploy("2.1")
    assert result["status"] == "succeeded"
    with env.store.connect() as conn:
        old = history.get_run(conn, dead)
    assert old["status"] == "interrupted" and f"taken over by deploy {result['id']}" in old["error"]


def test_rollback_to_a_release_no_longer_on_disk(env):
    for version in ("1.0", "2.0", "3.0"):
        assert env.deploy(version)["status"] == "succeeded"
    # keep=2: 1.0 was pruned from every host.
    for rec in env.records.values():
        assert not os.path.exists(os.path.join(rec["apps"]["shop"]["base"], "shop", "releases", "1.0"))
    target = deploy_api.rollback_request(env.store, "shop", "test", to="1.0")
    assert target["version"] == "1.0" and target["from_version"] == "3.0"
    request = deploy_api.validate_request("shop", "test", "1.0", target["artifact"], target["sha256"])
    deploy_id = deploy_api.start(
        env.store, env.dconf, request, "alice", kind="rollback", rollback_of=target["from_deploy"]
    )
    result = env.run(deploy_id)
    assert result["status"] == "succeeded" and result["kind"] == "rollback"
    assert all(env.serving(h) == (200, "ok 1.0") for h in env.records)
    # Without `to`: the release before the live one.
    assert deploy_api.rollback_request(env.store, "shop", "test")["version"] == "3.0"
    with pytest.raises(NotFound, match="0.1 was never deployed successfully"):
        deploy_api.rollback_request(env.store, "shop", "test", to="0.1")


def _current(env, name):
    """The release each link of the host's app folder points at."""
    app_dir = os.path.join(env.records[name]["apps"]["shop"]["base"], "shop")
    return os.path.realpath(os.path.join(app_dir, "current")).rsplit("/", 1)[-1]


def _slot_port(env, name, slot):
    return env.records[name]["apps"]["shop"]["slots"][slot]["port"]


def test_blue_green_flips_the_balancers(env):
    first = env.deploy("1.0", strategy="blue_green")
    assert first["status"] == "succeeded", first
    assert first["slot"] == "blue"
    # The flip is a CMDB change naming the balancers of the env; they saw the new slot.
    (call,) = env.balancers.calls
    assert call["apply"] == {"lb.deploy.test": ["lb"]}
    assert call["live"] == {"test": {"shop": {"active": "blue"}}}
    assert first["flip"]["ok"] and first["flip"]["applied"] == ["lb.deploy.test"]
    second = env.deploy("2.0", strategy="blue_green")
    assert second["status"] == "succeeded" and second["slot"] == "green"
    assert env.balancers.calls[-1]["live"] == {"test": {"shop": {"active": "green"}}}
    assert env.balancers.calls[-1]["version"] > call["version"]
    with env.store.connect() as conn:
        assert history.active_slots(conn, "test") == {
            "test": {"shop": {"active": "green", "version": "2.0", "blue": "1.0", "green": "2.0"}}
        }
    for name in env.records:
        assert env.serving(name, _slot_port(env, name, "blue")) == (200, "ok 1.0")
        assert env.serving(name, _slot_port(env, name, "green")) == (200, "ok 2.0")
        assert _current(env, name) == "2.0"
    phases = _phases(env, second["id"])
    assert phases.index("flipped") < phases.index("balancers") < phases.index("succeeded")

    calls = len(env.balancers.calls)
    broken = env.deploy("3.0", broken=True, strategy="blue_green")
    assert broken["status"] == "rolled_back"
    assert "traffic stays on slot green" in broken["error"]
    # The idle slot failed its health check: no flip, the balancers were not touched.
    assert len(env.balancers.calls) == calls
    with env.store.connect() as conn:
        assert history.get_slots(conn, "shop", "test")["active"] == "green"
    for name in env.records:
        assert env.serving(name, _slot_port(env, name, "green")) == (200, "ok 2.0")


def test_a_failed_balancer_update_flips_back(env):
    assert env.deploy("1.0", strategy="blue_green")["status"] == "succeeded"
    assert env.deploy("2.0", strategy="blue_green")["status"] == "succeeded"
    # The balancer state fails on the flip, and works when flipping back.
    env.balancers.script = [False, True]
    calls = len(env.balancers.calls)
    result = env.deploy("3.0", strategy="blue_green")
    assert result["status"] == "rolled_back", result
    assert "the balancers did not take slot blue" in result["error"]
    assert "check_cmd execution failed" in result["error"]
    # Flip, then flip back: the balancers were asked twice, the second time for green.
    flip, back = env.balancers.calls[calls:]
    assert flip["live"] == {"test": {"shop": {"active": "blue"}}}
    assert back["live"] == {"test": {"shop": {"active": "green"}}}
    assert result["flip"]["ok"] is False and result["flip_back"]["ok"] is True
    with env.store.connect() as conn:
        row = history.get_slots(conn, "shop", "test")
    assert row["active"] == "green" and row["green_version"] == "2.0"
    assert set(result["hosts_by_status"]) == {"rolled_back"}
    for name in env.records:
        # The hosts never followed: `current` and the live slot stay on 2.0.
        assert _current(env, name) == "2.0"
        assert env.serving(name, _slot_port(env, name, "green")) == (200, "ok 2.0")
    assert "flipped" in _phases(env, result["id"])


def test_a_failed_first_flip_leaves_no_slot(env):
    # The balancers fail the flip, then take the flip back.
    env.balancers.script = [False, True]
    result = env.deploy("1.0", strategy="blue_green")
    assert result["status"] == "rolled_back", result
    assert result["flip"]["ok"] is False and result["flip_back"]["ok"] is True
    assert [c["live"] for c in env.balancers.calls] == [{"test": {"shop": {"active": "blue"}}}, {}]
    with env.store.connect() as conn:
        # As before the deploy: no live slot, the balancers route to the app's usual port.
        assert history.get_slots(conn, "shop", "test") is None
    assert set(result["hosts_by_status"]) == {"rolled_back"}
    # Both updates failing: the deploy says the rollback failed, and where.
    env.balancers.script = [False, False]
    worse = env.deploy("1.1", strategy="blue_green")
    assert worse["status"] == "rollback_failed", worse
    assert "rollback failed on lb.deploy.test" in worse["error"]
    assert set(worse["hosts_by_status"]) == {"rollback_failed"}


def test_blue_green_rollback_is_an_instant_flip(env):
    assert env.deploy("1.0", strategy="blue_green")["status"] == "succeeded"
    assert env.deploy("2.0", strategy="blue_green")["status"] == "succeeded"
    target = deploy_api.rollback_request(env.store, "shop", "test")
    assert target["version"] == "1.0"
    assert target["instant"] == {
        "flip_only": True,
        "slot": "blue",
        "live_slot": "green",
        "live_version": "2.0",
    }
    request = deploy_api.validate_request("shop", "test", "1.0", target["artifact"], target["sha256"])
    env.executor.calls.clear()
    deploy_id = deploy_api.start(
        env.store,
        env.dconf,
        request,
        "alice",
        {"strategy": "blue_green"},
        kind="rollback",
        rollback_of=target["from_deploy"],
        plan_extra=target["instant"],
    )
    back = env.run(deploy_id)
    assert back["status"] == "succeeded" and back["kind"] == "rollback" and back["slot"] == "blue", back
    # Nothing downloaded or installed: a health check of the old slot, then the flip.
    assert {fun for fun, _ in env.executor.calls} == {"saltops_release.health", "saltops_release.set_active"}
    assert env.balancers.calls[-1]["live"] == {"test": {"shop": {"active": "blue"}}}
    assert all(h["previous_version"] == "2.0" for h in back["hosts"].values())
    with env.store.connect() as conn:
        row = history.get_slots(conn, "shop", "test")
    assert (row["active"], row["blue_version"], row["green_version"]) == ("blue", "1.0", "2.0")
    for name in env.records:
        assert _current(env, name) == "1.0"
        assert env.serving(name, _slot_port(env, name, "green")) == (200, "ok 2.0")
    # And forward again: the idle slot (green) holds 2.0.
    again = deploy_api.rollback_request(env.store, "shop", "test", to="2.0")
    assert again["instant"]["slot"] == "green"


def test_an_instant_rollback_to_a_dead_slot_flips_nothing(env):
    assert env.deploy("1.0", strategy="blue_green")["status"] == "succeeded"
    assert env.deploy("2.0", strategy="blue_green")["status"] == "succeeded"
    victim = min(env.records)
    app_dir = os.path.join(env.records[victim]["apps"]["shop"]["base"], "shop")
    with open(os.path.join(app_dir, "app-blue.pid")) as fh:
        os.kill(int(fh.read()), 15)
    target = deploy_api.rollback_request(env.store, "shop", "test")
    request = deploy_api.validate_request("shop", "test", "1.0", target["artifact"], target["sha256"])
    calls = len(env.balancers.calls)
    deploy_id = deploy_api.start(
        env.store,
        env.dconf,
        request,
        "alice",
        {"strategy": "blue_green"},
        kind="rollback",
        plan_extra=target["instant"],
    )
    result = env.run(deploy_id)
    assert result["status"] == "failed"
    assert f"slot blue is not healthy with 1.0 on 1 host(s), first: {victim}" in result["error"]
    assert "traffic stays on slot green" in result["error"] and "instant=False" in result["error"]
    assert len(env.balancers.calls) == calls
    with env.store.connect() as conn:
        assert history.get_slots(conn, "shop", "test")["active"] == "green"


def test_a_rolling_deploy_after_blue_green_goes_into_the_live_slot(env):
    assert env.deploy("1.0", strategy="blue_green")["status"] == "succeeded"
    calls = len(env.balancers.calls)
    rolling = env.deploy("2.0")
    assert rolling["status"] == "succeeded", rolling
    assert rolling["slot"] == "blue"
    # Same live slot, so nothing to flip: the balancers were not asked.
    assert len(env.balancers.calls) == calls
    for name in env.records:
        assert env.serving(name, _slot_port(env, name, "blue")) == (200, "ok 2.0")
        assert _current(env, name) == "2.0"
    with env.store.connect() as conn:
        row = history.get_slots(conn, "shop", "test")
    assert (row["active"], row["blue_version"], row["deploy_id"]) == ("blue", "2.0", rolling["id"])
    # A failing canary in the live slot is rolled back inside that slot.
    broken = env.deploy("3.0", broken=True, strategy="canary")
    assert broken["status"] == "rolled_back", broken
    for name in env.records:
        assert env.serving(name, _slot_port(env, name, "blue")) == (200, "ok 2.0")
    with env.store.connect() as conn:
        assert history.get_slots(conn, "shop", "test")["blue_version"] == "2.0"
    # The next blue/green deploy installs into green and flips.
    third = env.deploy("4.0", strategy="blue_green")
    assert third["status"] == "succeeded" and third["slot"] == "green"
    for name in env.records:
        assert env.serving(name, _slot_port(env, name, "blue")) == (200, "ok 2.0")
        assert env.serving(name, _slot_port(env, name, "green")) == (200, "ok 4.0")


def test_preview_changes_nothing(env):
    plan = deploy_api.preview(env.store, env.dconf, "shop", "test", {"strategy": "canary"})
    assert plan["total"] == 4 and plan["batches"][0]["kind"] == "canary"
    assert plan["locked_by"] is None
    with env.store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar() == 0
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(event_outbox)).scalar() == 1
        )  # the CMDB write
    from saltops.errors import ValidationError

    with pytest.raises(ValidationError, match="no online host in env 'prod' runs app 'shop'"):
        deploy_api.preview(env.store, env.dconf, "shop", "prod")


def test_a_batch_whose_returns_were_all_lost_is_asked_again(env):
    """A restarted master loses a batch's returns: the hosts switched all the same, and say so."""
    assert env.deploy("1.0")["status"] == "succeeded"
    env.dconf["master_wait"] = 30
    env.executor.lose = {"switch"}
    result = env.deploy("2.0")
    assert result["status"] == "succeeded", (
        result["error"],
        {h: v["error"] for h, v in result["hosts"].items()},
    )
    assert result["hosts_by_status"] == {"switched": 4}
    assert all("its return was lost" not in (h["error"] or "") for h in result["hosts"].values())
    lost = [d for p, d in env.progress if p == "returns_lost"]
    assert len(lost) == len(result["batches"])
    asked = [h for fun, h in env.executor.calls if fun.endswith(".health")]
    assert sorted(asked) == sorted(env.records)
    for name in env.records:
        assert env.serving(name) == (200, "ok 2.0")


def test_hosts_that_stay_silent_after_lost_returns_count_as_not_answering(env):
    assert env.deploy("1.0")["status"] == "succeeded"
    env.dconf["master_wait"] = 1
    plan = deploy_api.preview(env.store, env.dconf, "shop", "test")
    first = plan["batches"][0]["hosts"]
    original = env.executor.call

    def call(fun, hostnames, args, settings_by_host, timeout, kwargs=None):
        # The first batch switches, then its minions go silent (their returns and the questions lost).
        env.executor.down = set(first) if fun.endswith((".switch", ".health")) else set()
        return original(fun, hostnames, args, settings_by_host, timeout, kwargs)

    env.executor.call = call
    result = env.deploy("2.0")
    assert result["status"] == "rolled_back", result
    assert "no answer from the minion" in result["error"], result["error"]
    # They were asked again (health) before being counted, and nothing went further.
    asked = {h for fun, h in env.executor.calls if fun.endswith(".health")}
    assert set(first) <= asked
    assert result["batches"][0]["status"] == "failed"
    for name in env.records:
        assert env.serving(name) == (200, "ok 1.0")
