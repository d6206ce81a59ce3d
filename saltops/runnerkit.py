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

from salt.exceptions import CommandExecutionError, SaltInvocationError


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
        try:
            return func(*args, **kwargs)
        except errors as err:
            return make_refusal(func.__globals__.get("__context__"), err)

    rebound = types.FunctionType(
        wrapper.__code__, func.__globals__, func.__name__, wrapper.__defaults__, wrapper.__closure__
    )
    return functools.update_wrapper(rebound, func)


def is_refusal(result):
    return isinstance(result, dict) and result.get("result") is False and "error" in result
