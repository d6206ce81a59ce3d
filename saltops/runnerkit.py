"""How SaltOps runners report a call they refuse.

Salt's runner client reports a raised ``SaltInvocationError`` (a ``TypeError``)
as "Passed invalid arguments" with the usage text and no exit code, and any
other exception as a traceback: neither is a clear error, and ``salt-run``
exits 0 for the first.  A refused call therefore returns
``{"result": False, "error": ..., "retcode": 1}``: ``salt-run`` exits with the
``retcode`` of a returned dict, and ``__context__["retcode"]`` marks the job
failed for the runner client and salt-api.
"""

import datetime
import functools
import inspect
import logging
import types

import sqlalchemy
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltops import config as saltops_config
from saltops.cmdb import version as cmdb_version
from saltops.errors import ConfigError, SaltOpsError, StoreUnavailable, ValidationError
from saltops.identity import acting_user
from saltops.store import get_store

log = logging.getLogger(__name__)


def refusal(context, error):
    """The return of a refused call; marks the job failed in Salt's ``__context__``."""
    if context is not None:
        context["retcode"] = 1
    return {"result": False, "error": str(error), "retcode": 1}


def argument_problems(name, signature, args, kwargs):
    """``(kwargs, error, problems)`` for a call of ``signature``; ``error`` is ``None`` when the call fits.

    Salt's private ``__pub_*`` keys are dropped for functions without ``**kwargs``.
    Every problem is reported at once (all missing and all unknown arguments).
    """
    params = signature.parameters.values()
    takes_var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    takes_var_pos = any(p.kind is p.VAR_POSITIONAL for p in params)
    if not takes_var_kw:
        kwargs = {k: v for k, v in kwargs.items() if not str(k).startswith("__")}
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    positional = [p.name for p in named if p.kind is p.POSITIONAL_OR_KEYWORD]
    given = set(positional[: len(args)])
    parts, problems = [], []
    if len(args) > len(positional) and not takes_var_pos:
        text = f"too many positional arguments ({len(args)} given, it takes at most {len(positional)})"
        parts.append(text)
        problems.append(text)
    twice = sorted(k for k in kwargs if k in given)
    if twice:
        parts.append(f"argument(s) given twice: {', '.join(twice)}")
        problems.extend(f"{k} is given twice" for k in twice)
    missing = [p.name for p in named if p.default is p.empty and p.name not in given and p.name not in kwargs]
    if missing:
        parts.append(f"missing argument(s): {', '.join(missing)}")
        problems.extend(f"{k} is required" for k in missing)
    known = {p.name for p in named}
    unknown = [] if takes_var_kw else sorted(k for k in kwargs if k not in known)
    if unknown:
        parts.append(f"unknown argument(s) {', '.join(unknown)}; it takes {', '.join(p.name for p in named)}")
        problems.extend(f"unknown argument {k!r}" for k in unknown)
    if not parts:
        return kwargs, None, []
    return kwargs, f"{name}: {'; '.join(parts)}; nothing was changed (usage: salt-run -d {name})", problems


def _as_runner(func, wrapper, signature):
    """``wrapper`` in ``func``'s module globals, shown to Salt with a ``**kwargs``.

    Salt drops keyword arguments a function does not take before the call when
    the call comes through salt-api (and refuses them with exit code 0 on
    ``salt-run``): a ``**kwargs`` in the signature lets every one reach the
    wrapper's check.  Salt's argspec follows ``__wrapped__`` past
    ``__signature__``, hence its removal.
    """
    rebound = types.FunctionType(
        wrapper.__code__, func.__globals__, func.__name__, wrapper.__defaults__, wrapper.__closure__
    )
    functools.update_wrapper(rebound, func)
    # What the function really takes, for checks made before a call (task definitions).
    rebound.argument_signature = signature
    if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        extra = inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)
        signature = signature.replace(parameters=[*signature.parameters.values(), extra])
    rebound.__signature__ = signature
    del rebound.__wrapped__
    return rebound


def _public_name(func):
    """``cmdb.import`` for the runner function ``import_``: the name a user types."""
    module = func.__globals__.get("__virtualname__") or func.__module__.rsplit(".", 1)[-1]
    alias = (func.__globals__.get("__func_alias__") or {}).get(func.__name__, func.__name__)
    return f"{module}.{alias}"


def actor(module_globals):
    """Who is acting, for a runner module's globals (Salt injects ``__user__`` there per call)."""
    return acting_user(module_globals.get("__user__"))


def clean_kwargs(kwargs):
    """``**kwargs`` without the ``__pub_*`` keys Salt adds."""
    return {k: v for k, v in kwargs.items() if not str(k).startswith("__")}


# The outputter (``_output/saltops_progress.py``) salt-run prints progress events with.
PROGRESS_OUTPUTTER = "saltops_progress"


def fire_progress(module_globals, payload):
    """Fire ``payload`` as the runner's ``progress`` job event, if Salt gave the call one.

    ``salt-run`` prints it as one line (its ``message``) through the outputter
    the event names; the event keeps every field of ``payload``.

    The reactor runs several runners of one event in parallel threads, and
    Salt's per-call job-event proxy can be gone by the time a long runner
    reports: progress is informational and never fails the work it reports on.
    """
    jid_event = module_globals.get("__jid_event__")
    if jid_event is None:
        return
    try:
        jid_event.fire_event({"outputter": PROGRESS_OUTPUTTER, **payload}, "progress")
    except ReferenceError:
        log.debug("progress event dropped (the job's event proxy is gone): %s", payload.get("message"))


def progress_line(subject, phase, data, shown_in_subject=()):
    """``"<subject>: <phase> k=v, ..."``: one progress step as a person reads it.

    The keys already named in ``subject`` are left out; ``None`` values too.
    """
    details = {k: v for k, v in data.items() if k not in shown_in_subject and v is not None}
    line = f"{subject}: {phase}"
    if details:
        line += " " + ", ".join(f"{k}={_short(v)}" for k, v in sorted(details.items()))
    return line


def _short(value):
    """A list as ``a, b`` (``a, b ... (+N)`` past 5 items); anything else as ``str``."""
    if isinstance(value, (list, tuple)):
        shown = ", ".join(str(v) for v in value[:5])
        return f"[{shown}{f' ... (+{len(value) - 5})' if len(value) > 5 else ''}]"
    return str(value)


def progress_to(module_globals):
    """A ``progress(message, data)`` over the runner's ``__jid_event__``: ``salt-run`` prints it,
    salt-api streams it; nothing happens where Salt gave the call no job events."""

    def progress(message, data):
        fire_progress(module_globals, {"message": message, **data})

    return progress


def iso_times(value, *keys):
    """``value`` (a dict or a list of dicts) with the epoch seconds under ``keys`` as ISO-8601 UTC text.

    ``1796191186.5`` becomes ``2026-12-02T05:59:46+00:00``: what a person and
    a JSON client read without converting; anything else is left as it is.
    """
    if isinstance(value, list):
        return [iso_times(item, *keys) for item in value]
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for key in keys:
        stamp = out.get(key)
        if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
            moment = datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)
            out[key] = moment.isoformat(timespec="seconds")
    return out


def is_refusal(result):
    return isinstance(result, dict) and result.get("result") is False and "error" in result


def safe_url(url):
    """A database URL fit for an error message: the password masked."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, TypeError, ValueError):
        return "<unparsable db_url>"


def open_store(opts, newest=None):
    """``(saltops config, store)`` for a runner's ``__opts__``, or a clear ``CommandExecutionError``.

    With ``newest`` (an Alembic revision), the schema is migrated only when
    that revision is not recorded yet: one query instead of Alembic's full
    up-to-date check (~80 ms of imports) on every call.
    """
    try:
        conf = saltops_config.load(opts)
        saltops_config.db_url(conf)
    except ConfigError as err:
        raise CommandExecutionError(f"SaltOps configuration is invalid: {err}") from None
    try:
        store = get_store(conf["db_url"], conf["db_options"], migrate=newest is None)
        if newest is not None and newest not in _recorded_revisions(store):
            store.migrate()
    except StoreUnavailable as err:
        raise CommandExecutionError(
            f"the SaltOps database {safe_url(conf['db_url'])} is unavailable: {err}"
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, OSError, RuntimeError) as err:
        # A wrong URL, a missing driver, an unwritable SQLite directory, a stuck migration.
        raise CommandExecutionError(
            f"the SaltOps database {safe_url(conf['db_url'])} cannot be used: {type(err).__name__}: {err}"
        ) from None
    # This master's pillar sees the runner's CMDB writes at its next render.
    cmdb_version.publish_on_commit(store, conf["cmdb"]["snapshot_file"])
    return conf, store


def _recorded_revisions(store):
    try:
        with store.connect() as conn:
            return {
                row[0] for row in conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version"))
            }
    except sqlalchemy.exc.DBAPIError:
        return set()


def call(func, *args, **kwargs):
    """Run a core function, turning SaltOps errors into Salt's exception types."""
    try:
        return func(*args, **kwargs)
    except ValidationError as err:
        raise SaltInvocationError(str(err)) from None
    except StoreUnavailable as err:
        raise CommandExecutionError(
            f"the SaltOps database is unavailable; nothing was changed: {err}"
        ) from None
    except SaltOpsError as err:
        raise CommandExecutionError(str(err)) from None


# --------------------------------------------------------------------------- refusals
#
# Every refusal lists its ``problems`` (a deploy request's caller needs them
# all at once), and unknown keyword arguments are checked here: Salt reports
# those as "Passed invalid arguments" with exit status 0.


class Refused(Exception):
    """A call refused before anything changed: the message and the ``problems`` found."""

    def __init__(self, message, problems=None):
        super().__init__(message)
        self.problems = list(problems or [])


def refusal_with_problems(context, message, problems=None):
    """A refusal that lists ``problems`` (the message alone when there are none)."""
    out = refusal(context, message)
    out["problems"] = list(problems or [message])
    return out


def refuses(func):
    """Return a refusal (exit status 1) instead of raising, for bad input, bad arguments and SaltOps errors.

    Arguments that do not fit the function are a refusal too, instead of Salt's
    "Passed invalid arguments" with exit code 0.  The wrapper shares ``func``'s
    module globals: Salt injects ``__user__``, ``__jid_event__``,
    ``__context__``... into ``<loaded function>.__globals__`` of one function
    per module, so a wrapper living in this module's namespace would not see
    them; every name it needs is bound here, in its closure.
    """
    signature = inspect.signature(func)
    name = _public_name(func)
    check = argument_problems
    refused, make_refusal = Refused, refusal_with_problems
    invalid, failed = ValidationError, SaltOpsError
    salt_errors = (SaltInvocationError, CommandExecutionError)

    def wrapper(*args, **kwargs):
        context = func.__globals__.get("__context__")
        if context is not None:
            # __context__ outlives the call: an earlier refusal must not fail this one.
            context["retcode"] = 0
        kwargs, message, problems = check(name, signature, args, kwargs)
        if message:
            return make_refusal(context, message, problems)
        try:
            return func(*args, **kwargs)
        except refused as err:
            return make_refusal(context, str(err), err.problems)
        except invalid as err:
            return make_refusal(context, err.args[0], err.problems or [err.args[0]])
        except (failed, *salt_errors) as err:
            return make_refusal(context, str(err), [str(err)])

    return _as_runner(func, wrapper, signature)


def text_args(what, **kwargs):
    """The salt CLI reads ``version=1.10`` as the number 1.1: refuse numbers instead of guessing."""
    problems = [
        f"{name} was read as the {type(value).__name__} {value!r}, not as text; give it as a string, "
        f'e.g. {name}: "1.10" in YAML, "{name}": "1.10" in JSON (Salt reads {name}=1.10 as YAML: the number 1.1)'
        for name, value in kwargs.items()
        if value is not None and not isinstance(value, str)
    ]
    if problems:
        raise Refused(f"invalid {what}; nothing was changed", problems)


def file_or_text(what, path, text):
    """The text of ``path`` (a file on the master) or ``text``: exactly one of them, else a refusal."""
    if (path is None) == (text is None):
        raise SaltInvocationError(f"give exactly one of path= (a {what} file on the master) or text=")
    if text is not None:
        return text
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as err:
        raise SaltInvocationError(f"cannot read the {what} file {path}: {err.strerror}") from None


def required(**kwargs):
    missing = [name for name, value in kwargs.items() if value in (None, "")]
    if missing:
        raise Refused(
            f"missing argument(s): {', '.join(missing)}; nothing was changed",
            [f"{name} is required" for name in missing],
        )


def flag(name, value):
    """``True``/``False`` (or their text) as a bool, else a refusal."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise Refused(f"{name} must be True or False, got {value!r}")


def record_id(what, value):
    """A record id given on the command line as an int, else a refusal."""
    if isinstance(value, bool):
        raise Refused(f"a {what} id is a number, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Refused(f"a {what} id is a number, got {value!r}") from None


def whole_number(name, value, default=None):
    """An optional whole-number argument (``version``, ``limit``...): ``default`` when not given."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refused(f"{name} must be a whole number, got {value!r}")
    return value


def names(what, value):
    """``a,b`` or a list of non-empty names as a list; ``None`` when not given."""
    if value is None or value == "":
        return None
    listed = value.split(",") if isinstance(value, str) else value
    if not isinstance(listed, list) or not all(isinstance(n, str) and n.strip() for n in listed):
        raise Refused(f"{what} must be a comma-separated list of names, got {value!r}")
    return [n.strip() for n in listed]


def bounded_int(name, value, low, high):
    """``value`` as an int between ``low`` and ``high``, else a refusal."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise Refused(f"{name} must be a number, got {value!r}") from None
    if not low <= number <= high:
        raise Refused(f"{name} must be between {low} and {high}, got {number}")
    return number


def declined(name, reason, logger=log):
    """``(False, reason)`` for an engine's or pillar's ``__virtual__``, said at WARNING first.

    Salt drops a loader module whose ``__virtual__`` fails with a DEBUG line at most:
    an engine that does not start would otherwise leave no trace in the master log.
    """
    logger.warning("%s not started: %s", name, reason)
    return False, f"{name}: {reason}"
