"""Checking a task definition: every problem found at once, nothing saved when there is one.

A definition names what runs (``fun`` with ``args``/``kwargs``: a runner
function on the master, or, with ``targets``, an execution function on the
CMDB hosts the targets match), when (exactly one of ``cron``, ``every``,
``at``; ``tz``), and how (``timeout``, ``overlap``, ``catch_up``,
``notify``).  Whether ``fun`` exists and takes those arguments is asked of
``check_function``, which the runner builds from Salt's runner loader and
the target minions (:mod:`saltops.bridge.functions`).
"""

import fnmatch
import re

from saltops.errors import ValidationError
from saltops.tasks import targets as targets_mod
from saltops.tasks.schedule import Schedule, ScheduleError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FUN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
OVERLAP = ("skip", "queue", "kill")
CATCH_UP = ("once", "skip")
NOTIFY = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")

# The fields a caller may give (task.add) or change (task.update).
FIELDS = ("fun", "args", "kwargs", "targets", "cron", "every", "at", "tz", "timeout", "overlap",
          "catch_up", "notify", "enabled")


def schedule_of(fields):
    """``(kind, expr)`` from the one schedule field given; problems are raised as ScheduleError."""
    given = [(kind, fields.get(key)) for key, kind in (("cron", "cron"), ("every", "interval"), ("at", "once"))
             if fields.get(key) not in (None, "")]
    if len(given) != 1:
        raise ScheduleError("give exactly one of cron='*/5 * * * *', every='10m' or at='2026-12-03 02:00'")
    return given[0]


def check(name, fields, settings, now, check_function, resolve_targets):
    """A definition's row values (without the bookkeeping columns), or :class:`ValidationError`.

    ``resolve_targets(filters)`` gives the CMDB hostnames the targets match now;
    ``check_function(kind, fun, args, kwargs, hostnames)`` lists the problems
    with calling ``fun`` (on those hosts, for a minion task).
    ``now`` (POSIX seconds) anchors an interval and must precede a one-off time.
    """
    problems = []
    if not isinstance(name, str) or not NAME.match(name):
        problems.append(f"name {name!r}: 1-64 letters, digits, '_', '.', '-' (starting with a letter or digit)")
    fun = fields.get("fun")
    args = fields.get("args") if fields.get("args") is not None else []
    kwargs = fields.get("kwargs") if fields.get("kwargs") is not None else {}
    if isinstance(args, tuple):
        args = list(args)
    if not isinstance(args, list):
        problems.append("args must be a list")
        args = []
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        problems.append("kwargs must be a mapping of argument names to values")
        kwargs = {}
    kind = "minion" if fields.get("targets") not in (None, "", {}) else "runner"
    filters = None
    if kind == "minion":
        try:
            filters = targets_mod.parse(fields["targets"])
        except ValidationError as err:
            problems.append(str(err))
    hostnames = None
    if filters is not None:
        hostnames = resolve_targets(filters)
        if not hostnames:
            problems.append(f"targets {targets_mod.render(filters)!r} match no host in the CMDB")
    allowed = settings["allow_runner" if kind == "runner" else "allow_minion"]
    if not isinstance(fun, str) or not FUN.match(fun):
        problems.append(f"fun {fun!r} is not a function name such as test.ping or state.apply")
    elif not any(fnmatch.fnmatchcase(fun, pattern) for pattern in allowed):
        problems.append(f"{kind} function {fun!r} may not be scheduled here "
                        f"(saltops:tasks:allow_{kind} allows {', '.join(allowed) or 'none'})")
    elif kind == "runner" or hostnames:
        problems.extend(check_function(kind, fun, args, kwargs, hostnames))
    tz = fields.get("tz") or "UTC"
    schedule = None
    try:
        sched_kind, expr = schedule_of(fields)
        schedule = Schedule.parse(sched_kind, expr, tz, anchor=now)
        if schedule.next_after(now) is None:
            problems.append(f"at={expr!r} is in the past")
    except ScheduleError as err:
        problems.append(str(err))
    timeout = fields.get("timeout")
    if timeout in (None, ""):
        timeout = settings["default_timeout"]
    try:
        if isinstance(timeout, bool):
            raise ValueError
        timeout = int(timeout)
    except (TypeError, ValueError):
        problems.append(f"timeout {fields.get('timeout')!r} is not a whole number of seconds")
        timeout = None
    if timeout is not None and not settings["min_timeout"] <= timeout <= settings["max_timeout"]:
        problems.append(f"timeout {timeout} s is out of range ({settings['min_timeout']}-{settings['max_timeout']} s)")
    overlap = fields.get("overlap") or "skip"
    if overlap not in OVERLAP:
        problems.append(f"overlap {overlap!r} is not one of {', '.join(OVERLAP)}")
    catch_up = fields.get("catch_up") or "once"
    if catch_up not in CATCH_UP:
        problems.append(f"catch_up {catch_up!r} is not one of {', '.join(CATCH_UP)}")
    notify = fields.get("notify") or None
    if notify is not None and (not isinstance(notify, str) or not NOTIFY.match(notify)):
        problems.append(f"notify {notify!r}: a receiver or route label (letters, digits, '_', '.', '@', '-')")
    enabled = fields.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"enabled must be true or false, got {enabled!r}")
    if problems:
        raise ValidationError(f"task {name!r} not saved", problems)
    return {
        "name": name,
        "kind": kind,
        "fun": fun,
        "args": args,
        "kwargs": kwargs,
        "targets": targets_mod.render(filters) if filters else None,
        "sched_kind": schedule.kind,
        "sched_expr": schedule.expr,
        "tz": schedule.tz,
        "anchor": schedule.anchor,
        "timeout": timeout,
        "overlap": overlap,
        "catch_up": catch_up,
        "notify": notify,
        "enabled": enabled,
    }


def schedule_of_row(row):
    """The :class:`Schedule` of a stored definition."""
    return Schedule(row["sched_kind"], row["sched_expr"], row["tz"], row["anchor"])
