"""
SaltOps scheduled tasks: define, change and inspect periodic runner calls and minion jobs.

Thin runner over :mod:`saltops.tasks`; the ``saltops_tasks`` engine fires
the tasks (see ``docs/tasks.md``).  Every change is checked first and saved
with an audit row naming the acting user; a refused call changes nothing
and returns ``{"result": False, "error": ..., "retcode": 1}``.
"""

import time

from saltops import runnerkit
from saltops.identity import acting_user
from saltops.runnerkit import Refused, refuses
from saltops.tasks import control, definitions
from saltops.tasks import settings as task_settings

__virtualname__ = "task"
__func_alias__ = {"list_": "list"}

_call = runnerkit.call
# Runner argument -> definition field (Salt's own names for a call's arguments are arg and kwarg).
_FIELDS = {"fun": "fun", "arg": "args", "kwarg": "kwargs", "targets": "targets", "cron": "cron", "every": "every",
           "at": "at", "tz": "tz", "timeout": "timeout", "overlap": "overlap", "catch_up": "catch_up",
           "notify": "notify", "enabled": "enabled"}


def __virtual__():
    return __virtualname__


def _user():
    return acting_user(globals().get("__user__"))


def _context():
    conf, store = runnerkit.open_store(__opts__)  # noqa: F821
    return store, _call(task_settings.load, conf)


def _checker():
    from saltops.bridge import functions

    return functions.checker(__opts__, runner_loader=__salt__)  # noqa: F821


def _fields(given):
    unknown = sorted(k for k in given if not k.startswith("__") and k not in _FIELDS)
    if unknown:
        raise Refused(f"unknown argument(s) {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
    return {_FIELDS[k]: v for k, v in given.items() if not k.startswith("__")}


def _shown(definition):
    """A definition as returned: its next due time as ISO-8601 text."""
    return runnerkit.iso_times(definition, "next_due")


@refuses
def add(name, fun, **kwargs):
    """
    Define a task: ``fun`` on the master (a runner call) or, with ``targets``, on CMDB hosts.

    Exactly one of ``cron`` (5 fields, read in ``tz``), ``every`` (``30s``,
    ``10m``, ``1h``) or ``at`` (a one-off time).  Optional: ``arg``,
    ``kwarg``, ``tz`` (IANA zone, default UTC), ``timeout`` (seconds),
    ``overlap`` (skip, queue, kill), ``catch_up`` (once, skip), ``notify``
    (a receiver or route label for the failure alarm), ``enabled``.

    CLI Example:

    .. code-block:: bash

        salt-run task.add nightly-nginx-restart service.restart arg='[nginx]' targets='role=web env=prod' cron='0 3 * * *' tz=Asia/Shanghai
        salt-run task.add hourly-report alarm.list every=1h notify=ops
    """
    store, settings = _context()
    fields = _fields(dict(kwargs, fun=fun))
    return _shown(_call(definitions.add, store, name, fields, _user(), settings, time.time(), _checker()))


@refuses
def update(name, **kwargs):
    """
    Change fields of a task (same arguments as ``task.add``); the whole definition is checked again.

    CLI Example:

    .. code-block:: bash

        salt-run task.update nightly-nginx-restart cron='30 3 * * *' overlap=kill
    """
    store, settings = _context()
    return _shown(_call(definitions.update, store, name, _fields(kwargs), _user(), settings, time.time(), _checker()))


@refuses
def remove(name):
    """
    Delete a task's definition; its run history stays until pruned.

    CLI Example:

    .. code-block:: bash

        salt-run task.remove nightly-nginx-restart
    """
    return _call(definitions.remove, _context()[0], name, _user())


@refuses
def enable(name):
    """
    Enable a task; its schedule resumes from now (times missed while disabled are not caught up).

    CLI Example:

    .. code-block:: bash

        salt-run task.enable nightly-nginx-restart
    """
    return _shown(_call(definitions.set_enabled, _context()[0], name, True, _user(), time.time()))


@refuses
def disable(name):
    """
    Disable a task: nothing fires until it is enabled again (a run already going goes on).

    CLI Example:

    .. code-block:: bash

        salt-run task.disable nightly-nginx-restart
    """
    return _shown(_call(definitions.set_enabled, _context()[0], name, False, _user(), time.time()))


@refuses
def list_(name=None):
    """
    Tasks with their schedule and next run (in the task's time zone).

    CLI Example:

    .. code-block:: bash

        salt-run task.list
        salt-run task.list name=nightly-nginx-restart
    """
    return _call(control.list_tasks, _context()[0], name)


@refuses
def run_now(name):
    """
    Queue a run of a task now (the engine starts it within ``saltops:tasks:refresh`` seconds).

    CLI Example:

    .. code-block:: bash

        salt-run task.run_now nightly-nginx-restart
    """
    return _call(control.run_now, _context()[0], name, _user(), time.time())


@refuses
def history(name=None, limit=20, run=None):
    """
    Runs, newest first: start, end, status, return code, per-host results, trimmed output, who defined and who triggered.

    CLI Example:

    .. code-block:: bash

        salt-run task.history name=nightly-nginx-restart limit=5
        salt-run task.history run=42
    """
    return _call(control.history, _context()[0], name, limit, run)
