# ruff: noqa: F821  (__opts__, __salt__, __user__, __context__ are injected by the Salt loader)
"""
Tickets: requests made from a template, approved step by step, and carried out by Salt.

Thin runner over :mod:`saltops.tickets` (see ``docs/tickets.md``).  Who acts
is always Salt's eauth user (``__user__``), never an argument; the core
decides from the store whether they may.  A refused call changes nothing and
returns ``{"result": False, "error": ..., "retcode": 1}``.
"""

import logging
import time

from saltops import runnerkit
from saltops.bridge.bus import announce_outbox
from saltops.runnerkit import Refused, refuses
from saltops.tickets import deadlines, notices, reports, templates
from saltops.tickets import settings as ticket_settings
from saltops.tickets.schema import HEAD as TICKETS_HEAD
from saltops.tickets.workflow import Workflow

log = logging.getLogger(__name__)

__virtualname__ = "ticket"
__func_alias__ = {"list_": "list", "return_": "return", "templates_": "templates"}

_call = runnerkit.call


def __virtual__():
    return __virtualname__


def _actor():
    return runnerkit.actor(globals())


class _Call:
    """What one runner call works with: the configuration, read once, its store and the workflow."""

    def __init__(self, execute=True):
        self.conf, self.store = runnerkit.open_store(__opts__, newest=TICKETS_HEAD)
        self.settings = _call(ticket_settings.load, self.conf)
        executor = self._executor() if execute else None
        self.flow = Workflow(self.store, executor=executor, ops_role=self.settings["ops_role"])

    def _executor(self):
        """Runs a ticket's action through Salt; its clients are imported when an action runs (every
        call is a new process, and most decisions run none)."""

        def execute(call):
            from saltops.bridge import ticketcalls

            return ticketcalls.executor(__opts__, self.store, self.conf,
                                        timeout=self.settings["action_timeout"])(call)

        return execute

    def notifier(self):
        return _call(notices.from_config, self.store, self.conf, self.settings, __opts__["cachedir"])


def _announce(store):
    """Fire the committed transitions' events (``saltops/ticket/<id>/<op>``); they wait in the outbox otherwise."""
    announce_outbox(__opts__, store, "ticket events", prefix="saltops/ticket/")


def _write(method, *args, **kwargs):
    ctx = _Call()
    result = _call(getattr(ctx.flow, method), _actor(), *args, **kwargs)
    _announce(ctx.store)
    _tell_approvers(ctx, result)
    return result


def _tell_approvers(ctx, result):
    """Queue the notices of the ticket's current step; a failure leaves them to ``ticket.check_deadlines``."""
    if not isinstance(result, dict) or not result.get("waiting_for"):
        return
    try:
        ctx.notifier().announce(result["id"])
    except Exception as err:  # noqa: BLE001  # pylint: disable=broad-except
        log.warning("ticket %s: approvers not told yet (the next deadline check tells them): %s", result["id"], err)


def _form(kwargs):
    return runnerkit.clean_kwargs(kwargs)


def _checker():
    from saltops.bridge import functions

    loader = functions.checker(__opts__, runner_loader=__salt__)
    return lambda fun, args, kwargs: loader("runner", fun, args, kwargs, [])


@refuses
def template_save(path=None, text=None):
    """
    Save a ticket template (YAML, from ``path`` on the master or ``text``) as its next version.

    Refused with every problem listed when it names an unknown runner, field,
    user, role or department, or a field has a bad type.

    CLI Example:

    .. code-block:: bash

        salt-run ticket.template_save /srv/saltops/templates/host-maintenance.yml
    """
    text = runnerkit.file_or_text("template", path, text)
    conf, store = runnerkit.open_store(__opts__, newest=TICKETS_HEAD)
    return _call(templates.save, store, _actor(), text, time.time(), _checker())


@refuses
def templates_(name=None, version=None):
    """
    The templates (newest versions), or one template's YAML as it was saved.

    CLI Example:

    .. code-block:: bash

        salt-run ticket.templates
        salt-run ticket.templates name=host-maintenance version=2
    """
    conf, store = runnerkit.open_store(__opts__, newest=TICKETS_HEAD)
    with store.connect() as conn:
        if name is None:
            return _call(templates.listing, conn)
        number, body, source = _call(templates.get, conn, name, version)
    return {"name": name, "version": number, "source": source, "body": body}



@refuses
def create(template, title=None, **form):
    """
    Apply for something: a ticket from the newest version of ``template``; the form's fields as arguments.

    CLI Example:

    .. code-block:: bash

        salt-run ticket.create host-maintenance host=web01.bj.example.com env=prod reason='disk swap'
    """
    return _write("create", template, _form(form), title)


@refuses
def show(ticket_id):
    """
    One ticket: its form, approvers' sub-tickets, actions (result and output) and every transition.

    CLI Example:

    .. code-block:: bash

        salt-run ticket.show 42
    """
    return _call(_Call(execute=False).flow.show, _actor(), ticket_id)


@refuses
def list_(scope="mine", state=None, template=None, limit=100):
    """
    Tickets, newest first: ``scope=mine`` (yours), ``to_approve`` (waiting for you), ``all`` (role ops).

    CLI Example:

    .. code-block:: bash

        salt-run ticket.list
        salt-run ticket.list scope=to_approve
        salt-run ticket.list scope=all state=returned
    """
    return _call(_Call(execute=False).flow.list, _actor(), scope, state, template, limit)


@refuses
def approve(ticket_id, comment=None):
    """
    Approve the current step of a ticket (as one of its approvers or their delegate).
    After the last approval the ticket's action runs, once, and its result goes on the ticket.

    CLI Example:

    .. code-block:: bash

        salt-run ticket.approve 42 comment='ok for tonight'
    """
    return _write("approve", ticket_id, comment)


@refuses
def reject(ticket_id, comment=None):
    """
    Reject a ticket at its current step; it ends ``rejected``.

    CLI Example:

    .. code-block:: bash

        salt-run ticket.reject 42 comment='not during the freeze'
    """
    return _write("reject", ticket_id, comment)


@refuses
def return_(ticket_id, comment):
    """
    Send a ticket back to its applicant with a comment; they may resubmit or cancel it.

    CLI Example:

    .. code-block:: bash

        salt-run ticket.return 42 comment='which host exactly?'
    """
    return _write("return_", ticket_id, comment)


@refuses
def resubmit(ticket_id, comment=None, **form):
    """
    Send a returned ticket again (the applicant), with changed form fields as arguments.

    CLI Example:

    .. code-block:: bash

        salt-run ticket.resubmit 42 host=web02.bj.example.com
    """
    return _write("resubmit", ticket_id, _form(form), comment)


@refuses
def cancel(ticket_id, comment=None):
    """
    Withdraw your ticket while it is in approval or returned.

    CLI Example:

    .. code-block:: bash

        salt-run ticket.cancel 42
    """
    return _write("cancel", ticket_id, comment)


@refuses
def comment(ticket_id, text):
    """
    Add a comment to a ticket you applied for, approve, stand in for, or operate.

    CLI Example:

    .. code-block:: bash

        salt-run ticket.comment 42 text='the window is 02:00-03:00'
    """
    return _write("comment", ticket_id, text)


@refuses
def delegate(to, until, since=None):
    """
    Let ``to`` approve for you until ``until`` (ISO 8601, e.g. 2026-12-24T18:00:00Z).

    CLI Example:

    .. code-block:: bash

        salt-run ticket.delegate bob until=2026-12-24T18:00:00Z
    """
    if not isinstance(until, str) and not isinstance(until, (int, float)):
        raise Refused("until is a time, e.g. until=2026-12-24T18:00:00Z")
    return _write("delegate", str(to), until, since)


@refuses
def confirm(ticket_id, comment=None):
    """
    Close a confirmation step (``type: confirm``) of a ticket as one of its people.

    CLI Example:

    .. code-block:: bash

        salt-run ticket.confirm 42
    """
    return _write("confirm", ticket_id, comment)


@refuses
def retry(ticket_id):
    """
    Run a ticket's failed action again (role ops): a new attempt, run once.

    CLI Example:

    .. code-block:: bash

        salt-run ticket.retry 42
    """
    return _write("retry", ticket_id)


@refuses
def rate(ticket_id, score, comment=None):
    """
    Rate your completed ticket from 1 to 5, once.

    CLI Example:

    .. code-block:: bash

        salt-run ticket.rate 42 5 comment='quick, thanks'
    """
    return _write("rate", ticket_id, score, comment)


@refuses
def report(since=None, format="json"):  # pylint: disable=redefined-builtin
    """
    Per template: ticket counts by state, time to approve, satisfaction (role ops).
    ``since``: POSIX seconds; ``format``: ``json`` (data), ``table`` or ``csv`` (text).

    CLI Example:

    .. code-block:: bash

        salt-run ticket.report
        salt-run ticket.report format=table
        salt-run ticket.report format=csv since=1767225600 --out=txt
    """
    if format not in reports.FORMATS:
        raise Refused(f"format must be one of {', '.join(reports.FORMATS)}, got {format!r}")
    return reports.render(_call(_Call(execute=False).flow.report, _actor(), since), format)


@refuses
def check_deadlines():
    """
    Tell the current steps' approvers who were not told, remind those past ``remind_after``
    and escalate steps past ``escalate_after`` to the approvers' managers (each once).
    Runs as the scheduled task ``tickets-deadlines`` (see ``ticket.schedule``).

    CLI Example:

    .. code-block:: bash

        salt-run ticket.check_deadlines
    """
    ctx = _Call(execute=False)  # an escalation runs no action
    done = _call(deadlines.check, ctx.flow, ctx.notifier(), time.time())
    _announce(ctx.store)
    return done


@refuses
def schedule(deadlines_every="1m", report_cron="0 8 * * 1", report_format="table"):
    """
    Define the scheduled tasks of tickets (role ops): ``tickets-deadlines`` runs
    ``ticket.check_deadlines`` every ``deadlines_every``; ``tickets-report`` runs
    ``ticket.report`` on ``report_cron`` as the person who scheduled it. Run again to change them.

    CLI Example:

    .. code-block:: bash

        salt-run ticket.schedule
        salt-run ticket.schedule deadlines_every=5m report_cron='0 9 * * *'
    """
    from saltops.bridge import functions
    from saltops.tasks import settings as task_settings

    ctx = _Call(execute=False)
    check = functions.checker(__opts__, runner_loader=__salt__)
    tasks = _call(task_settings.load, ctx.conf)
    return _call(deadlines.ensure_tasks, ctx.store, _actor(), ctx.settings["ops_role"], tasks, time.time(),
                 check, deadlines_every, report_cron, report_format)
