"""The pillar refresh after a CMDB change, and the balancer states it leads to (the HECD loop).

:func:`refresh` takes a CMDB version, reads from the audit log and the CMDB
what that change touched (:func:`saltops.cmdb.api.refresh_plan`), refreshes
those minions' pillar and applies the balancer state on the balancers whose
backends changed (``docs/hecd.md``).  Minions are reached through
:class:`saltops.saltcalls.SaltCalls`, which the ``cmdb`` runner builds from
Salt's clients; nothing here imports them.
"""

from dataclasses import dataclass, field

from saltops.cmdb import api
from saltops.errors import SaltOpsError, ValidationError
from saltops.saltcalls import SaltUnreachable

# ``state.apply queue=N``: a balancer already running a state waits for it to
# finish instead of refusing (two quick CMDB changes must both reach haproxy);
# with N runs already waiting, the next one is refused and reported.
APPLY_QUEUE = 10


def seconds(name, value, top):
    """``value`` as whole seconds between 1 and ``top``, or a :class:`ValidationError` naming ``name``."""
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name}={value!r} is not a number of seconds") from None
    if not 1 <= value <= top:
        raise ValidationError(f"{name} must be between 1 and {top} seconds")
    return value


def _flag(name, value):
    if not isinstance(value, bool):
        raise ValidationError(f"{name}={value!r} must be True or False")
    return value


def refresh_pillar(calls, tgt, tgt_type, names, everyone, timeout, block):
    """Publish ``saltutil.refresh_pillar``; with ``block`` wait for the minions to finish it.

    Returns ``(jid, refreshed, failed, no_answer)``; the last three are ``None``
    for a publish that did not wait.
    """
    if not block:
        return calls.publish(tgt, "saltutil.refresh_pillar", tgt_type=tgt_type), None, None, None
    # wait=True on the minion: the job returns once the minion has compiled its
    # new pillar, so what runs next on it sees the change.
    returns = calls.run(
        tgt, "saltutil.refresh_pillar", kwarg={"wait": True, "timeout": timeout}, tgt_type=tgt_type, timeout=timeout + 5
    )
    refreshed = sorted(m for m, (ret, _code) in returns.items() if ret is True)
    failed = sorted(m for m, (ret, _code) in returns.items() if ret is not True)
    no_answer = sorted(set(names) - set(returns)) if not everyone else []
    return None, refreshed, failed, no_answer


def _no_answer(apply_timeout):
    return {
        "result": False,
        "retcode": None,
        "states": 0,
        "changed": [],
        "failed": {},
        "errors": [f"no answer within {apply_timeout} s (see salt-run jobs.active)"],
    }


def apply_states(calls, plan, refreshed, wait, apply_timeout, test):
    """``state.apply`` the planned balancer states on the balancers whose pillar was refreshed."""
    out = {"applied": {}, "apply_skipped": dict(plan["skipped"]), "apply_test": test}
    groups = {}
    for minion, states in plan["apply"].items():
        if minion not in refreshed:
            out["apply_skipped"][minion] = "its pillar refresh was not confirmed: state not applied"
            continue
        sls = ",".join(states)
        out["applied"][minion] = sls
        groups.setdefault(sls, []).append(minion)
    out["apply_results" if wait else "apply_jids"] = {}
    for sls, minions in sorted(groups.items()):
        kwarg = {"queue": APPLY_QUEUE}
        if test:
            kwarg["test"] = True
        if not wait:
            out["apply_jids"][sls] = calls.publish(minions, "state.apply", [sls], kwarg=kwarg)
            continue
        returns = calls.run(minions, "state.apply", [sls], kwarg=kwarg, timeout=apply_timeout)
        for minion in minions:
            if minion in returns:
                out["apply_results"][minion] = api.summarize_state_return(*returns[minion])
            else:
                out["apply_results"][minion] = _no_answer(apply_timeout)
    if wait:
        failed = sorted(m for m, r in out["apply_results"].items() if not r["result"])
        if failed:
            out["warning"] = (
                f"the balancer state failed on {', '.join(failed)}: their previous configuration "
                "stays in place (see apply_results)"
            )
    return out


def refresh(store, conf, calls, version, wait=False, timeout=10, apply_timeout=300, test=None, once=False, actor=None):
    """Refresh the minions the change that made CMDB ``version`` touched, then update their balancers.

    Returns ``{version, targets, balancers, all, jid}``, with ``refreshed``,
    ``failed`` and ``no_answer`` when the refresh was waited for, and the
    balancer keys of :func:`apply_states` when balancers were concerned.
    ``once``: act only if this call claims the refresh that version's write
    queued (the reactor's path); otherwise return ``skipped`` with the reason.
    """
    test = conf["cmdb"]["balancer_test"] if test is None else test
    _flag("test", test)
    _flag("once", once)
    wait = bool(wait)
    timeout = seconds("timeout", timeout, 600)
    apply_timeout = seconds("apply_timeout", apply_timeout, 3600)
    if once:
        version, skipped = api.claim_refresh(store, version, actor or "unknown")
        if skipped:
            return {"version": version, "targets": [], "balancers": [], "all": False, "jid": None, "skipped": skipped}
    plan = api.refresh_plan(store, conf, version)
    names = sorted(set(plan["hosts"]) | set(plan["balancers"]))
    result = {"version": plan["version"], "targets": names, "balancers": plan["balancers"], "all": plan["all"]}
    if not names:
        result["jid"] = None
        return result
    tgt, tgt_type = ("*", "glob") if plan["all"] else (names, "list")
    # Balancers to update: wait for the refresh even when the caller does not.
    block = wait or bool(plan["apply"])
    calls.progress(f"refreshing the pillar of {len(names)} minion(s) for CMDB version {plan['version']}")
    jid, refreshed, failed, no_answer = refresh_pillar(calls, tgt, tgt_type, names, plan["all"], timeout, block)
    result["jid"] = jid
    if block:
        result.update(refreshed=refreshed, failed=failed, no_answer=no_answer)
    if not plan["apply"] and not plan["skipped"]:
        return result
    calls.progress(f"applying the balancer state on {', '.join(sorted(plan['apply'])) or 'no balancer'}")
    try:
        result.update(apply_states(calls, plan, set(refreshed or []), wait, apply_timeout, test))
    except SaltUnreachable as err:
        raise SaltUnreachable(f"the pillar was refreshed but the balancer state could not be published: {err}") from None
    return result


@dataclass(frozen=True)
class BalancerUpdate:
    """What updating the balancers after one CMDB change did (a blue/green flip decides on it).

    ``balancers``: the balancers the change concerned; ``applied``: those whose
    balancer state ran and succeeded; ``failed``: balancer -> why its state
    failed; ``skipped``: balancer -> why it was left out; ``test``: the states
    ran with ``test=True``; ``error``: the update could not run at all.
    """

    balancers: tuple = ()
    applied: tuple = ()
    failed: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    test: bool = False
    error: str = None


def _state_problem(summary):
    if not isinstance(summary, dict):
        return "no state result"
    if summary.get("errors"):
        return "; ".join(summary["errors"])[:500]
    if summary.get("failed"):
        return "; ".join(f"{sid}: {comment}" for sid, comment in sorted(summary["failed"].items()))[:500]
    return f"state run failed (retcode {summary.get('retcode')})"


def update(store, conf, calls, version, apply_timeout=300):
    """:func:`refresh` for CMDB ``version``, waited for, as a :class:`BalancerUpdate` (never raises
    a SaltOps error: an update that cannot run says why in ``error``)."""
    try:
        result = refresh(store, conf, calls, version, wait=True, apply_timeout=apply_timeout)
    except SaltOpsError as err:
        return BalancerUpdate(error=str(err))
    return outcome_of(result)


def outcome_of(result):
    """A waited-for :func:`refresh` return as a :class:`BalancerUpdate`."""
    results = result.get("apply_results") or {}
    ran = sorted(result.get("applied") or {})
    failed = {m: _state_problem(results.get(m)) for m in ran if not (results.get(m) or {}).get("result")}
    return BalancerUpdate(
        balancers=tuple(result.get("balancers") or ()),
        applied=tuple(m for m in ran if m not in failed),
        failed=failed,
        skipped=dict(result.get("apply_skipped") or {}),
        test=bool(result.get("apply_test")),
    )
