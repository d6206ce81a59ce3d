"""How SaltOps runners report a call they refuse.

Salt's runner client reports a raised ``SaltInvocationError`` (a ``TypeError``)
as "Passed invalid arguments" with the usage text and no exit code, and any
other exception as a traceback: neither is a clear error, and ``salt-run``
exits 0 for the first.  A refused call therefore returns
``{"result": False, "error": ..., "retcode": 1}``: ``salt-run`` exits with the
``retcode`` of a returned dict, and ``__context__["retcode"]`` marks the job
failed for the runner client and salt-api.
"""

import functools
import types

import sqlalchemy
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltops import config as saltops_config
from saltops.errors import ConfigError, SaltOpsError, StoreUnavailable, ValidationError
from saltops.store import get_store


def refusal(context, error):
    """The return of a refused call; marks the job failed in Salt's ``__context__``."""
    if context is not None:
        context["retcode"] = 1
    return {"result": False, "error": str(error), "retcode": 1}


def reports_failures(func):
    """Turn Salt's invocation and execution errors raised by ``func`` into a refusal.

    The wrapper shares ``func``'s module globals: Salt injects ``__user__``,
    ``__jid_event__``... into ``<loaded function>.__globals__`` of one function
    per module, so a wrapper living in this module's namespace would catch
    those names instead of the runner module.
    """
    errors = (SaltInvocationError, CommandExecutionError)
    make_refusal = refusal

    def wrapper(*args, **kwargs):
        context = func.__globals__.get("__context__")
        if context is not None:
            # __context__ outlives the call: an earlier refusal must not fail this one.
            context["retcode"] = 0
        try:
            return func(*args, **kwargs)
        except errors as err:
            return make_refusal(context, err)

    rebound = types.FunctionType(
        wrapper.__code__, func.__globals__, func.__name__, wrapper.__defaults__, wrapper.__closure__
    )
    return functools.update_wrapper(rebound, func)


def is_refusal(result):
    return isinstance(result, dict) and result.get("result") is False and "error" in result


def safe_url(url):
    """A database URL fit for an error message: the password masked."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, TypeError, ValueError):
        return "<unparsable db_url>"


def open_store(opts):
    """``(saltops config, store)`` for a runner's ``__opts__``, or a clear ``CommandExecutionError``."""
    try:
        conf = saltops_config.load(opts)
    except ConfigError as err:
        raise CommandExecutionError(f"SaltOps configuration is invalid: {err}") from None
    try:
        store = get_store(conf["db_url"], conf["db_options"])
    except StoreUnavailable as err:
        raise CommandExecutionError(f"the SaltOps database {safe_url(conf['db_url'])} is unavailable: {err}") from None
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, OSError, RuntimeError) as err:
        # A wrong URL, a missing driver, an unwritable SQLite directory, a stuck migration.
        raise CommandExecutionError(
            f"the SaltOps database {safe_url(conf['db_url'])} cannot be used: {type(err).__name__}: {err}"
        ) from None
    return conf, store


def call(func, *args, **kwargs):
    """Run a core function, turning SaltOps errors into Salt's exception types."""
    try:
        return func(*args, **kwargs)
    except ValidationError as err:
        raise SaltInvocationError(str(err)) from None
    except StoreUnavailable as err:
        raise CommandExecutionError(f"the SaltOps database is unavailable; nothing was changed: {err}") from None
    except SaltOpsError as err:
        raise CommandExecutionError(str(err)) from None
