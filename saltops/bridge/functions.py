"""Does a function exist, and does it take these arguments?  Asked of Salt for task definitions.

Runner functions are looked up in the master's runner loader (lazily: only
the named module is loaded).  Execution functions live on the minions, so
the target minions are asked (``sys.argspec``, a few seconds at most): a
function none of the answering minions has is refused; when no minion
answers, the name cannot be checked and the definition is refused too, so
that an unknown function never slips in unseen.
"""

import inspect

RESERVED = ("__pub_", "__kwarg__")


def _argument_problems(fun, params, varkw, args, kwargs, varargs=False):
    problems = []
    if not varkw:
        unknown = sorted(k for k in kwargs if k not in params and not k.startswith(RESERVED))
        if unknown:
            problems.append(f"{fun} takes no argument(s) {', '.join(unknown)} (it takes: {', '.join(params) or 'none'})")
    if not varargs and len(args) > len(params):
        problems.append(f"{fun} takes at most {len(params)} positional argument(s), got {len(args)}")
    return problems


def runner_problems(loader, fun, args, kwargs):
    """Problems with calling runner ``fun`` from ``loader`` (Salt's runner LazyLoader)."""
    if fun not in loader:
        return [f"unknown runner function {fun!r} (see salt-run sys.list_runner_functions)"]
    func = loader[fun]
    try:
        # A SaltOps runner shows Salt a ``**kwargs`` and checks its own arguments.
        signature = getattr(func, "argument_signature", None) or inspect.signature(func)
    except (TypeError, ValueError):
        return []
    params = [n for n, p in signature.parameters.items()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    varkw = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    varargs = any(p.kind == p.VAR_POSITIONAL for p in signature.parameters.values())
    return _argument_problems(fun, params, varkw, args, kwargs, varargs)


def minion_problems(client, hostnames, fun, args, kwargs, timeout=5):
    """Problems with calling execution function ``fun`` on ``hostnames`` (asked of the minions)."""
    if not hostnames:
        return []
    returns = client.cmd(list(hostnames)[:50], "sys.argspec", [fun], tgt_type="list", timeout=timeout) or {}
    specs = [ret.get(fun) for ret in returns.values() if isinstance(ret, dict)]
    if not returns:
        return [f"cannot check {fun!r}: none of the target minions answered within {timeout} s"]
    known = [s for s in specs if isinstance(s, dict)]
    if not known:
        return [f"unknown execution function {fun!r} on the target minions"]
    spec = known[0]
    params = list(spec.get("args") or [])
    return _argument_problems(fun, params, bool(spec.get("kwargs")), args, kwargs, bool(spec.get("varargs")))


def checker(opts, runner_loader=None, local_client=None, timeout=5):
    """``check_function(kind, fun, args, kwargs, hostnames)`` for :func:`saltops.tasks.spec.check`."""
    import salt.client
    import salt.loader

    cache = {}

    def check_function(kind, fun, args, kwargs, hostnames):
        if kind == "runner":
            if "runners" not in cache:
                cache["runners"] = runner_loader if runner_loader is not None else salt.loader.runner(opts)
            return runner_problems(cache["runners"], fun, args, kwargs)
        client = local_client or salt.client.get_local_client(mopts=opts)
        try:
            return minion_problems(client, hostnames, fun, args, kwargs, timeout)
        finally:
            if local_client is None:
                client.destroy()

    return check_function
