# ruff: noqa: F821  (__opts__, __context__ are injected by the Salt loader)
"""
Deploy apps from the CMDB: rolling, canary and blue/green, with automatic rollback.

Targets are the CMDB hosts whose ``apps`` include the app, ``online``, in the
env.  The logic lives in :mod:`saltops.deploy`; this module parses arguments,
builds the Salt clients, reports progress and turns errors into Salt's.
See ``docs/deploy.md``.
"""

import logging

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

try:
    from saltops import config as saltops_config
    from saltops.deploy import config as deploy_config
    from saltops.deploy import engine, history
    from saltops.errors import ConfigError, Conflict, NotFound, SaltOpsError, ValidationError
    from saltops.identity import acting_user
    from saltops.store import get_store

    HAS_SALTOPS = True
except ImportError as _err:  # pragma: no cover - shown by __virtual__
    HAS_SALTOPS = False
    _IMPORT_ERROR = str(_err)

__virtualname__ = "deploy"
# ``history`` is taken by the imported module.
__func_alias__ = {"history_": "history"}

_OK = ("succeeded", "paused")


def __virtual__():
    if not HAS_SALTOPS:
        return (False, f"the saltops package is not importable: {_IMPORT_ERROR}")
    return __virtualname__


def _conf():
    try:
        conf = saltops_config.load(__opts__)
        return conf, deploy_config.load(conf)
    except ConfigError as err:
        raise _fail(CommandExecutionError(f"invalid saltops configuration: {err}")) from None


def _store(conf):
    return get_store(conf["db_url"], conf.get("db_options"))


def _actor():
    return acting_user(globals().get("__user__"))


_BUS = {}


def _fire(tag, data):
    """Fire on the master bus, through one connection per process (a deploy fires dozens)."""
    import os

    import salt.utils.event

    bus = _BUS.get(os.getpid())
    if bus is None:
        _BUS.clear()
        bus = _BUS[os.getpid()] = salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False)
    if not bus.fire_event(data, tag):
        _BUS.clear()
        raise CommandExecutionError(f"the master event bus did not take {tag}")


def _progress(phase, data):
    jid_event = globals().get("__jid_event__")
    if jid_event is None:
        return
    message = f"deploy {data.get('id')} {data.get('app')} {data.get('version')}: {phase}"
    details = {k: v for k, v in data.items() if k not in ("id", "app", "version")}
    if details:
        message += " " + ", ".join(f"{k}={v}" for k, v in sorted(details.items()))
    jid_event.fire_event({"message": message, "phase": phase, **data}, "progress")


def _executor(dconf, overrides=None):
    from saltops.deploy.executor import LocalExecutor

    timeout = (overrides or {}).get("return_timeout") or dconf["return_timeout"]
    return LocalExecutor(__opts__, return_timeout=float(timeout), chunk_size=dconf["chunk_size"])


def _fail(exc):
    """Mark the job failed: salt-run reports a raised error without failing the job otherwise."""
    __context__["retcode"] = 1
    return exc


def _translate(err):
    if isinstance(err, ValidationError):
        return _fail(SaltInvocationError(str(err)))
    return _fail(CommandExecutionError(str(err)))


def _finish(result):
    """``retcode`` in the returned dict is what sets salt-run's exit status."""
    if isinstance(result, dict):
        result["retcode"] = 0 if result.get("status") in _OK else 1
        if result["retcode"]:
            __context__["retcode"] = 1
    return result


def _text_args(**kwargs):
    """The salt CLI reads ``version=1.10`` as the number 1.1: refuse numbers instead of guessing."""
    for name, value in kwargs.items():
        if value is not None and not isinstance(value, str):
            raise _fail(
                SaltInvocationError(
                    f"{name} was read as the {type(value).__name__} {value!r}, not as text; quote it on "
                    f"the command line, e.g. {name}='\"1.10\"' (YAML reads 1.10 as the number 1.1)"
                )
            )


def _overrides(**kwargs):
    return {k: v for k, v in kwargs.items() if v is not None}


def _deploy_id(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _fail(SaltInvocationError(f"a deploy id is a number, got {value!r}")) from None


def run(
    app,
    version,
    artifact,
    sha256,
    env,
    strategy=None,
    batch_size=None,
    max_share=None,
    canary_size=None,
    pause=None,
    max_failures=None,
    return_timeout=None,
    job_timeout=None,
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
        ``blue_green`` (install into the idle slot, then flip the balancers).

    CLI Example:

    .. code-block:: bash

        salt-run deploy.run app=shop version=1.4.2 env=prod \\
            artifact=https://ci.example.com/shop-1.4.2.tar.gz sha256=<sum> strategy=canary pause=True
    """
    conf, dconf = _conf()
    overrides = _overrides(
        strategy=strategy,
        batch_size=batch_size,
        max_share=max_share,
        canary_size=canary_size,
        pause=pause,
        max_failures=max_failures,
        return_timeout=return_timeout,
        job_timeout=job_timeout,
    )
    _text_args(version=version, sha256=sha256, artifact=artifact, env=env, app=app)
    try:
        request = engine.validate_request(app, env, version, artifact, sha256, conf["cmdb"]["envs"])
        store = _store(conf)
        deploy_id = engine.start(store, dconf, request, _actor(), overrides)
        _progress("created", {"id": deploy_id, "app": app, "version": str(version), "env": env})
        driver = engine.Driver(store, dconf, deploy_id, _executor(dconf, overrides), _fire, _progress)
        return _finish(driver.execute())
    except SaltOpsError as err:
        raise _translate(err) from None


def plan(app, env, strategy=None, batch_size=None, max_share=None, canary_size=None):
    """
    Show the targets and batches a deploy would use; changes nothing.

    CLI Example:

    .. code-block:: bash

        salt-run deploy.plan app=shop env=prod strategy=canary batch_size=10%
    """
    conf, dconf = _conf()
    overrides = _overrides(
        strategy=strategy, batch_size=batch_size, max_share=max_share, canary_size=canary_size
    )
    try:
        return engine.preview(_store(conf), dconf, app, env, overrides)
    except SaltOpsError as err:
        raise _translate(err) from None


def status(id=None, app=None, env=None):
    """
    One deploy in full (batches, every host's steps), or the unfinished ones.

    ``stale: true`` marks a deploy whose runner is gone (resume or abort it).

    CLI Example:

    .. code-block:: bash

        salt-run deploy.status
        salt-run deploy.status 42
    """
    conf, dconf = _conf()
    try:
        return engine.status(_store(conf), dconf, None if id is None else _deploy_id(id), app, env)
    except SaltOpsError as err:
        raise _translate(err) from None


def history_(app=None, env=None, limit=20):
    """
    Past deploys, newest first.

    CLI Example:

    .. code-block:: bash

        salt-run deploy.history app=shop env=prod limit=10
    """
    conf, _dconf = _conf()
    with _store(conf).connect() as conn:
        return history.list_runs(conn, app=app, env=env, limit=int(limit))


def rollback(app, env, to=None, strategy="rolling", batch_size=None, max_failures=None, return_timeout=None):
    """
    Bring ``app`` in ``env`` back to the release before the live one, or to ``to``.

    A rollback is a deploy of the earlier release (its artifact and checksum
    come from the history, so hosts that pruned it fetch it again), recorded
    with ``kind: rollback``.

    CLI Example:

    .. code-block:: bash

        salt-run deploy.rollback app=shop env=prod
        salt-run deploy.rollback app=shop env=prod to=1.4.1
    """
    conf, dconf = _conf()
    overrides = _overrides(
        strategy=strategy, batch_size=batch_size, max_failures=max_failures, return_timeout=return_timeout
    )
    _text_args(to=to)
    try:
        store = _store(conf)
        target = engine.rollback_request(store, app, env, to)
        request = engine.validate_request(
            app, env, target["version"], target["artifact"], target["sha256"], conf["cmdb"]["envs"]
        )
        deploy_id = engine.start(
            store, dconf, request, _actor(), overrides, kind="rollback", rollback_of=target["from_deploy"]
        )
        driver = engine.Driver(store, dconf, deploy_id, _executor(dconf, overrides), _fire, _progress)
        return _finish(driver.execute())
    except SaltOpsError as err:
        raise _translate(err) from None


def resume(id):
    """
    Continue a deploy paused after its canary, or one whose runner died.

    CLI Example:

    .. code-block:: bash

        salt-run deploy.resume 42
    """
    conf, dconf = _conf()
    try:
        store = _store(conf)
        return _finish(engine.resume(store, dconf, _deploy_id(id), _executor(dconf), _fire, _progress))
    except SaltOpsError as err:
        raise _translate(err) from None


def abort(id):
    """
    Stop a deploy and roll back the hosts it switched.

    A deploy still driven by a live runner is asked to stop at its next batch;
    a paused one, or one whose runner died, is rolled back by this call.

    CLI Example:

    .. code-block:: bash

        salt-run deploy.abort 42
    """
    conf, dconf = _conf()
    try:
        store = _store(conf)
        result = engine.abort(store, dconf, _deploy_id(id), _executor(dconf), _fire, _progress)
        # An aborted deploy is what was asked for.
        return dict(
            result,
            retcode=0
            if result.get("status")
            in ("aborted", "rolling_back", "switching", "paused", "staging", "pending")
            else 1,
        )
    except (Conflict, NotFound, SaltOpsError) as err:
        raise _translate(err) from None


def slots(env=None):
    """
    The live blue/green slot of every app (what the balancers read).

    CLI Example:

    .. code-block:: bash

        salt-run deploy.slots env=prod
    """
    conf, _dconf = _conf()
    with _store(conf).connect() as conn:
        return history.active_slots(conn, env)
