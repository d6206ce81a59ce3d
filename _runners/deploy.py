# ruff: noqa: F821  (__opts__, __context__, __salt__ are injected by the Salt loader)
"""
Deploy apps from the CMDB: rolling, canary and blue/green, with automatic rollback.

Targets are the CMDB hosts whose ``apps`` include the app, ``online``, in the
env.  The logic lives in :mod:`saltops.deploy`; this module parses arguments,
builds the Salt clients, reports progress and turns errors into Salt's.
See ``docs/deploy.md``.

A call that is refused (bad or missing arguments, another deploy running, an
unknown deploy id) returns ``{"result": False, "error": ..., "problems": [...],
"retcode": 1}``: ``salt-run`` exits 1 and the runner client and salt-api see
the job failed.  Salt's own handling of a raised ``SaltInvocationError``
("Passed invalid arguments") would exit 0.
"""

import functools
import logging
import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

try:
    from saltops import config as saltops_config
    from saltops.deploy import config as deploy_config
    from saltops.deploy import engine, history
    from saltops.errors import ConfigError, SaltOpsError, ValidationError
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


class _Refused(Exception):
    """A call refused before anything changed: ``message`` and the ``problems`` found."""

    def __init__(self, message, problems=None):
        super().__init__(message)
        self.problems = list(problems or [])


def _refusal(message, problems=None):
    __context__["retcode"] = 1
    return {"result": False, "error": message, "problems": list(problems or [message]), "retcode": 1}


def _refuses(func):
    """Return a refusal (exit status 1) instead of raising, for bad input and SaltOps errors."""

    import inspect

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        __context__["retcode"] = 0
        unknown = sorted(k for k in kwargs if not str(k).startswith("__") and k not in _params(func))
        if unknown:
            return _refusal(
                f"deploy.{func.__name__.rstrip('_')}: unknown argument(s) {', '.join(unknown)}; "
                f"it takes {', '.join(_params(func))}",
                [f"unknown argument {k!r}" for k in unknown],
            )
        kwargs = {k: v for k, v in kwargs.items() if not str(k).startswith("__")}
        try:
            return func(*args, **kwargs)
        except _Refused as err:
            return _refusal(str(err), err.problems)
        except ValidationError as err:
            return _refusal(err.args[0], err.problems or [err.args[0]])
        except SaltOpsError as err:
            return _refusal(str(err), [str(err)])
        except (SaltInvocationError, CommandExecutionError) as err:
            return _refusal(str(err), [str(err)])

    # Salt checks keyword arguments against the signature before the call and
    # reports unknown ones as "Passed invalid arguments" (exit status 0): show
    # it a **kwargs so that the unknown ones reach the check above.
    signature = inspect.signature(func)
    extra = inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)
    wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), extra])
    # Salt's argspec follows __wrapped__ past __signature__.
    del wrapper.__wrapped__
    return wrapper


@functools.cache
def _params(func):
    import inspect

    return tuple(inspect.signature(func, follow_wrapped=False).parameters)


def _conf():
    try:
        conf = saltops_config.load(__opts__)
        return conf, deploy_config.load(conf)
    except ConfigError as err:
        raise _Refused(f"invalid saltops configuration: {err}") from None


def _store(conf):
    """The store, migrated only when the deploy tables are not at their newest revision.

    Checking ``alembic_version`` directly spares every salt-run the import of
    Alembic (~80 ms here) that a full up-to-date check needs.
    """
    import sqlalchemy as sa

    from saltops.deploy.schema import HEAD

    store = get_store(conf["db_url"], conf.get("db_options"), migrate=False)
    try:
        with store.connect() as conn:
            recorded = {row[0] for row in conn.execute(sa.text("SELECT version_num FROM alembic_version"))}
    except sa.exc.DBAPIError:
        recorded = set()
    if HEAD not in recorded:
        store.migrate()
    return store


def _actor():
    return acting_user(globals().get("__user__"))


def _fire_with(executor):
    """Fire on the master bus through the LocalClient's own connection (no second one per deploy)."""

    def fire(tag, data):
        if not executor.client.event.fire_event(data, tag):
            raise CommandExecutionError(f"the master event bus did not take {tag}")

    return fire


def _progress(phase, data):
    jid_event = globals().get("__jid_event__")
    if jid_event is None:
        return
    message = f"deploy {data.get('id')} {data.get('app')} {data.get('version')}: {phase}"
    details = {k: v for k, v in data.items() if k not in ("id", "app", "version")}
    if details:
        message += " " + ", ".join(f"{k}={v}" for k, v in sorted(details.items()))
    jid_event.fire_event({"message": message, "phase": phase, **data}, "progress")


_EXECUTORS = {}


def _executor(dconf, overrides=None):
    """One LocalClient per process and timeout: its event bus connection is reused."""
    from saltops.deploy.executor import LocalExecutor

    timeout = float((overrides or {}).get("return_timeout") or dconf["return_timeout"])
    key = (os.getpid(), timeout, dconf["chunk_size"])
    found = _EXECUTORS.get(key)
    if found is None:
        found = _EXECUTORS[key] = LocalExecutor(
            __opts__, return_timeout=timeout, chunk_size=dconf["chunk_size"]
        )
    return found


def _balancers(dconf):
    """After a blue/green flip: the CMDB's balancer loop for that change, waited for."""

    def update(cmdb_version):
        return __salt__["cmdb.refresh"](
            version=cmdb_version, wait=True, apply_timeout=int(dconf["balancer_timeout"])
        )

    return update


def _finish(result):
    """``retcode`` in the returned dict is what sets salt-run's exit status."""
    if isinstance(result, dict):
        result["retcode"] = 0 if result.get("status") in _OK else 1
        __context__["retcode"] = result["retcode"]
    return result


def _text_args(**kwargs):
    """The salt CLI reads ``version=1.10`` as the number 1.1: refuse numbers instead of guessing."""
    problems = [
        f"{name} was read as the {type(value).__name__} {value!r}, not as text; quote it on "
        f"the command line, e.g. {name}='\"1.10\"' (YAML reads 1.10 as the number 1.1)"
        for name, value in kwargs.items()
        if value is not None and not isinstance(value, str)
    ]
    if problems:
        raise _Refused("invalid deploy request; nothing was changed", problems)


def _required(**kwargs):
    missing = [name for name, value in kwargs.items() if value in (None, "")]
    if missing:
        raise _Refused(
            f"missing argument(s): {', '.join(missing)}; nothing was changed",
            [f"{name} is required" for name in missing],
        )


def _overrides(**kwargs):
    return {k: v for k, v in kwargs.items() if v is not None}


def _deploy_id(value):
    if isinstance(value, bool):
        raise _Refused(f"a deploy id is a number, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _Refused(f"a deploy id is a number, got {value!r}") from None


def _flag(name, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _Refused(f"{name} must be True or False, got {value!r}")


@_refuses
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

    CLI Example:

    .. code-block:: bash

        salt-run deploy.run app=shop version=1.4.2 env=prod \\
            artifact=https://ci.example.com/shop-1.4.2.tar.gz sha256=<sum> strategy=canary pause=True
    """
    _text_args(version=version, sha256=sha256, artifact=artifact, env=env, app=app)
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
    request = engine.validate_request(app, env, version, artifact, sha256, conf["cmdb"]["envs"])
    deploy_config.options(dconf, overrides)
    store = _store(conf)
    deploy_id = engine.start(store, dconf, request, _actor(), overrides)
    _progress("created", {"id": deploy_id, "app": app, "version": str(version), "env": env})
    executor = _executor(dconf, overrides)
    driver = engine.Driver(
        store, dconf, deploy_id, executor, _fire_with(executor), _progress, _balancers(dconf)
    )
    return _finish(driver.execute())


@_refuses
def plan(app=None, env=None, strategy=None, batch_size=None, max_share=None, canary_size=None):
    """
    Show the targets and batches a deploy would use; changes nothing.

    CLI Example:

    .. code-block:: bash

        salt-run deploy.plan app=shop env=prod strategy=canary batch_size=10%
    """
    _required(app=app, env=env)
    conf, dconf = _conf()
    overrides = _overrides(
        strategy=strategy, batch_size=batch_size, max_share=max_share, canary_size=canary_size
    )
    return engine.preview(_store(conf), dconf, app, env, overrides)


@_refuses
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
    return engine.status(_store(conf), dconf, None if id is None else _deploy_id(id), app, env)


@_refuses
def history_(app=None, env=None, limit=20):
    """
    Past deploys, newest first.

    CLI Example:

    .. code-block:: bash

        salt-run deploy.history app=shop env=prod limit=10
    """
    try:
        limit = int(limit)
    except (TypeError, ValueError):
        raise _Refused(f"limit must be a number, got {limit!r}") from None
    if not 1 <= limit <= 10000:
        raise _Refused(f"limit must be between 1 and 10000, got {limit}")
    conf, _dconf = _conf()
    with _store(conf).connect() as conn:
        return history.list_runs(conn, app=app, env=env, limit=limit)


@_refuses
def rollback(
    app=None,
    env=None,
    to=None,
    strategy=None,
    batch_size=None,
    max_failures=None,
    return_timeout=None,
    instant=True,
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

    CLI Example:

    .. code-block:: bash

        salt-run deploy.rollback app=shop env=prod
        salt-run deploy.rollback app=shop env=prod to=1.4.1
        salt-run deploy.rollback app=shop env=prod instant=False strategy=canary
    """
    _required(app=app, env=env)
    _text_args(to=to, app=app, env=env)
    instant = _flag("instant", instant)
    conf, dconf = _conf()
    store = _store(conf)
    target = engine.rollback_request(store, app, env, to)
    request = engine.validate_request(
        app, env, target["version"], target["artifact"], target["sha256"], conf["cmdb"]["envs"]
    )
    extra = target["instant"] if instant else None
    if extra:
        overrides = _overrides(strategy="blue_green", return_timeout=return_timeout)
    else:
        overrides = _overrides(
            strategy=strategy or "rolling",
            batch_size=batch_size,
            max_failures=max_failures,
            return_timeout=return_timeout,
        )
    deploy_config.options(dconf, overrides)
    deploy_id = engine.start(
        store,
        dconf,
        request,
        _actor(),
        overrides,
        kind="rollback",
        rollback_of=target["from_deploy"],
        plan_extra=extra,
    )
    executor = _executor(dconf, overrides)
    driver = engine.Driver(
        store, dconf, deploy_id, executor, _fire_with(executor), _progress, _balancers(dconf)
    )
    return _finish(driver.execute())


@_refuses
def resume(id=None):
    """
    Continue a deploy paused after its canary, or one whose runner died.

    CLI Example:

    .. code-block:: bash

        salt-run deploy.resume 42
    """
    _required(id=id)
    deploy_id = _deploy_id(id)
    conf, dconf = _conf()
    store = _store(conf)
    executor = _executor(dconf)
    return _finish(
        engine.resume(store, dconf, deploy_id, executor, _fire_with(executor), _progress, _balancers(dconf))
    )


@_refuses
def abort(id=None):
    """
    Stop a deploy and roll back the hosts it switched.

    A deploy still driven by a live runner is asked to stop at its next batch;
    a paused one, or one whose runner died, is rolled back by this call.

    CLI Example:

    .. code-block:: bash

        salt-run deploy.abort 42
    """
    _required(id=id)
    deploy_id = _deploy_id(id)
    conf, dconf = _conf()
    store = _store(conf)
    executor = _executor(dconf)
    result = engine.abort(
        store, dconf, deploy_id, executor, _fire_with(executor), _progress, _balancers(dconf)
    )
    # An aborted deploy (or one asked to stop) is what was asked for.
    ok = result.get("status") in ("aborted", "rolling_back", "switching", "paused", "staging", "pending")
    result["retcode"] = 0 if ok else 1
    __context__["retcode"] = result["retcode"]
    return result


@_refuses
def slots(env=None):
    """
    The live blue/green slot of every app and what each slot holds
    (the balancers read the live slot from their pillar, ``deploy_slots``).

    CLI Example:

    .. code-block:: bash

        salt-run deploy.slots env=prod
    """
    conf, _dconf = _conf()
    with _store(conf).connect() as conn:
        return history.active_slots(conn, env)
