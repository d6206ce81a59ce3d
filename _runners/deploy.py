# ruff: noqa: F821  (__opts__, __context__, __salt__ are injected by the Salt loader)
"""
Deploy apps from the CMDB: rolling, canary and blue/green, with automatic rollback (``docs/deploy.md``).

The logic lives in :mod:`saltops.deploy`; this adapter parses arguments, hands
the core Salt's clients and progress, and returns refusals
(:func:`saltops.runnerkit.refuses`: ``retcode`` 1, the ``problems`` found).
"""

import logging
import os

log = logging.getLogger(__name__)

try:
    from saltops import runnerkit
    from saltops.cmdb import version as cmdb_version
    from saltops.deploy import api as deploy_api
    from saltops.deploy import config as deploy_config
    from saltops.deploy import history
    from saltops.deploy.schema import HEAD
    from saltops.errors import ConfigError
    from saltops.identity import acting_user
    from saltops.runnerkit import Refused, refuses

    HAS_SALTOPS = True
except ImportError as _err:  # pragma: no cover - shown by __virtual__
    HAS_SALTOPS = False
    _IMPORT_ERROR = str(_err)

__virtualname__ = "deploy"
# ``history`` is taken by the imported module.
__func_alias__ = {"history_": "history"}

_OK = ("succeeded", "paused")
# What deploy.abort was asked for: the deploy stopped, or asked to stop.
_ABORT_OK = ("aborted", "rolling_back", "switching", "paused", "staging", "pending")


def __virtual__():
    if not HAS_SALTOPS:
        return (False, f"the saltops package is not importable: {_IMPORT_ERROR}")
    return __virtualname__


def _open():
    """``(saltops config, deploy config, store)``; journals go to the master's cache by default."""
    conf, store = runnerkit.open_store(__opts__, newest=HEAD)
    # A blue/green flip is a CMDB change: this master's pillar sees it at once.
    cmdb_version.publish_on_commit(store, conf["cmdb"]["snapshot_file"])
    try:
        dconf = deploy_config.load(conf)
    except ConfigError as err:
        raise Refused(f"invalid saltops configuration: {err}") from None
    if dconf["journal_dir"] is None:
        # Host outcomes kept while the database is away (saltops.deploy.journal).
        dconf["journal_dir"] = os.path.join(__opts__["cachedir"], "saltops", "deploy-journal")
    return conf, dconf, store


def _progress(phase, data):
    jid_event = globals().get("__jid_event__")
    if jid_event is None:
        return
    subject = f"deploy {data.get('id')} {data.get('app')} {data.get('version')}"
    message = runnerkit.progress_line(subject, phase, data, ("id", "app", "version"))
    runnerkit.fire_progress(globals(), {"message": message, "phase": phase, **data})


def _driving(conf, dconf, store, overrides=None):
    """Executor (one LocalClient per process and timeout), event firing, progress and balancer update."""
    from saltops.bridge.calls import salt_calls
    from saltops.bridge.local import LocalExecutor
    from saltops.cmdb import balancers as cmdb_balancers

    executor = LocalExecutor.shared(__opts__, dconf, (overrides or {}).get("return_timeout"))

    def balancers(cmdb_version):
        # After a blue/green flip: the CMDB's balancer loop for that change, waited for.
        calls = salt_calls(__opts__, runnerkit.progress_to(globals()))
        return cmdb_balancers.update(store, conf, calls, cmdb_version, int(dconf["balancer_timeout"]))

    return {"executor": executor, "fire": executor.fire, "progress": _progress, "balancers": balancers}


def _finish(result, ok=_OK):
    """``retcode`` in the returned dict is what sets salt-run's exit status."""
    if isinstance(result, dict):
        result["retcode"] = 0 if result.get("status") in ok else 1
        __context__["retcode"] = result["retcode"]
    return result


def _given(**kwargs):
    return {k: v for k, v in kwargs.items() if v is not None}


@refuses
def run(
    app=None,
    version=None,
    artifact=None,
    sha256=None,
    env=None,
    strategy=None,
    batch_size=None,
    max_share=None,
    canary_size=None,
    pause=None,
    max_failures=None,
    return_timeout=None,
    job_timeout=None,
    background=False,
):
    """
    Deploy ``app`` ``version`` to the CMDB's online hosts of ``env``.

    Every host downloads and verifies the artifact first; then hosts switch in
    batches that take at most ``max_share`` of any ISP line or IDC.  A failed
    canary, a failed health check beyond ``max_failures`` or a host that stops
    answering stops the deploy and rolls the switched hosts back.

    strategy
        ``rolling`` (default), ``canary`` (first ``canary_size`` hosts, then a
        health gate; ``pause=True`` waits for ``deploy.resume``) or
        ``blue_green`` (install into the idle slot, then flip the balancers and
        wait for their state runs; a failed flip flips back).

    background
        ``True`` returns the new deploy (``id``, status ``pending``) and the
        ``jid`` of the runner job that drives it, as soon as the request is
        checked and recorded; follow it with ``deploy.status <id>``.  For
        salt-api and other callers that cannot wait for the whole deploy.

    CLI Example:

    .. code-block:: bash

        salt-run deploy.run app=shop version=1.4.2 env=prod \\
            artifact=https://ci.example.com/shop-1.4.2.tar.gz sha256=<sum> strategy=canary pause=True
        salt-run deploy.run app=shop version=1.4.2 env=prod artifact=... sha256=... background=True
    """
    runnerkit.text_args("deploy request", version=version, sha256=sha256, artifact=artifact, env=env, app=app)
    background = runnerkit.flag("background", background)
    overrides = _given(
        strategy=strategy,
        batch_size=batch_size,
        max_share=max_share,
        canary_size=canary_size,
        pause=pause,
        max_failures=max_failures,
        return_timeout=return_timeout,
        job_timeout=job_timeout,
    )
    conf, dconf, store = _open()
    request = deploy_api.validate_request(app, env, version, artifact, sha256, conf["cmdb"]["envs"])
    deploy_config.options(dconf, overrides)
    user = acting_user(globals().get("__user__"))
    if background:
        return _in_background(store, dconf, request, user, overrides)
    deploy_id = deploy_api.start(store, dconf, request, user, overrides)
    _progress("created", {"id": deploy_id, "app": app, "version": str(version), "env": env})
    return _finish(deploy_api.Driver(store, dconf, deploy_id, **_driving(conf, dconf, store, overrides)).execute())


def _in_background(store, dconf, request, user, overrides):
    """Record the deploy for a runner job of its own (``deploy.resume`` under a known jid) and start that job."""
    from saltops.bridge import background

    job = background.new_job(__opts__)
    deploy_id = deploy_api.start(store, dconf, request, user, overrides, owner=deploy_api.handoff_owner(job["jid"]))
    _progress("created", {"id": deploy_id, "app": request["app"], "version": request["version"], "env": request["env"]})
    return _handed_over(store, dconf, deploy_id, job, user)


def _handed_over(store, dconf, deploy_id, job, user):
    """Start runner job ``job`` (``deploy.resume``) for the recorded deploy; the deploy and the jid."""
    from saltops.bridge import background

    background.start(__opts__, job, "deploy.resume", [deploy_id], user)
    out = deploy_api.status(store, dconf, deploy_id)
    out.update(jid=job["jid"], tag=job["tag"], comment=f"deploy {deploy_id} goes on in runner job {job['jid']}; "
               f"follow it with deploy.status {deploy_id}")
    return _finish(out, ok=_OK + ("pending", "staging", "switching"))


@refuses
def plan(app, env, strategy=None, batch_size=None, max_share=None, canary_size=None):
    """
    Show the targets and batches a deploy would use; changes nothing.

    CLI Example:

    .. code-block:: bash

        salt-run deploy.plan app=shop env=prod strategy=canary batch_size=10%
    """
    runnerkit.required(app=app, env=env)
    overrides = _given(strategy=strategy, batch_size=batch_size, max_share=max_share, canary_size=canary_size)
    _conf, dconf, store = _open()
    return deploy_api.preview(store, dconf, app, env, overrides)


@refuses
def status(id=None, app=None, env=None):
    """
    One deploy in full (batches, every host's steps), or the unfinished ones.

    ``stale: true`` marks a deploy whose runner is gone (resume or abort it).

    CLI Example:

    .. code-block:: bash

        salt-run deploy.status
        salt-run deploy.status 42
    """
    deploy_id = None if id is None else runnerkit.record_id("deploy", id)
    _conf, dconf, store = _open()
    return deploy_api.status(store, dconf, deploy_id, app, env)


@refuses
def history_(app=None, env=None, limit=20):
    """
    Past deploys, newest first.

    CLI Example:

    .. code-block:: bash

        salt-run deploy.history app=shop env=prod limit=10
    """
    limit = runnerkit.bounded_int("limit", limit, 1, 10000)
    _conf, _dconf, store = _open()
    with store.connect() as conn:
        return history.list_runs(conn, app=app, env=env, limit=limit)


@refuses
def rollback(
    app,
    env,
    to=None,
    strategy=None,
    batch_size=None,
    max_failures=None,
    return_timeout=None,
    instant=True,
    background=False,
):
    """
    Bring ``app`` in ``env`` back to the release before the live one, or to ``to``.

    When the idle blue/green slot still runs that release, the rollback flips
    the balancers back to it at once (after a health check of that slot on
    every host) and installs nothing.  Otherwise a rollback is a deploy of the
    earlier release (its artifact and checksum come from the history, so hosts
    that pruned it fetch it again), ``rolling`` unless ``strategy`` says
    otherwise.  Either way it is recorded with ``kind: rollback``.

    instant
        ``False`` redeploys even when the idle slot holds the release.

    background
        ``True`` returns the rollback (``id``, status ``pending``) and the
        ``jid`` of the runner job that drives it as soon as it is checked and
        recorded, as ``deploy.run`` does; follow it with ``deploy.status <id>``.

    CLI Example:

    .. code-block:: bash

        salt-run deploy.rollback app=shop env=prod
        salt-run deploy.rollback app=shop env=prod to=1.4.1
        salt-run deploy.rollback app=shop env=prod instant=False strategy=canary
        salt-run deploy.rollback app=shop env=prod background=True
    """
    runnerkit.required(app=app, env=env)
    runnerkit.text_args("deploy request", to=to, app=app, env=env)
    instant = runnerkit.flag("instant", instant)
    background = runnerkit.flag("background", background)
    conf, dconf, store = _open()
    overrides = _given(
        strategy=strategy, batch_size=batch_size, max_failures=max_failures, return_timeout=return_timeout
    )
    user = acting_user(globals().get("__user__"))
    job = None
    if background:
        from saltops.bridge import background as bg  # pylint: disable=import-outside-toplevel

        job = bg.new_job(__opts__)
    deploy_id, overrides = deploy_api.start_rollback(
        store,
        dconf,
        conf["cmdb"]["envs"],
        app,
        env,
        user,
        to,
        instant,
        overrides,
        owner=deploy_api.handoff_owner(job["jid"]) if job else None,
    )
    if job:
        return _handed_over(store, dconf, deploy_id, job, user)
    return _finish(deploy_api.Driver(store, dconf, deploy_id, **_driving(conf, dconf, store, overrides)).execute())


@refuses
def resume(id):
    """
    Continue a deploy paused after its canary, or one whose runner died.

    CLI Example:

    .. code-block:: bash

        salt-run deploy.resume 42
    """
    runnerkit.required(id=id)
    deploy_id = runnerkit.record_id("deploy", id)
    _conf, dconf, store = _open()
    # A deploy started with background=True was recorded for this job to drive.
    jid = globals().get("__jid__")
    handoff = deploy_api.handoff_owner(jid) if jid else None
    return _finish(deploy_api.resume(store, dconf, deploy_id, handoff=handoff, **_driving(_conf, dconf, store)))


@refuses
def abort(id):
    """
    Stop a deploy and roll back the hosts it switched.

    A deploy still driven by a live runner is asked to stop at its next batch;
    a paused one, or one whose runner died, is rolled back by this call.

    CLI Example:

    .. code-block:: bash

        salt-run deploy.abort 42
    """
    runnerkit.required(id=id)
    deploy_id = runnerkit.record_id("deploy", id)
    _conf, dconf, store = _open()
    return _finish(deploy_api.abort(store, dconf, deploy_id, **_driving(_conf, dconf, store)), ok=_ABORT_OK)


@refuses
def slots(env=None):
    """
    The live blue/green slot of every app and what each slot holds
    (the balancers read the live slot from their pillar, ``deploy_slots``).

    CLI Example:

    .. code-block:: bash

        salt-run deploy.slots env=prod
    """
    _conf, _dconf, store = _open()
    with store.connect() as conn:
        return history.active_slots(conn, env)
