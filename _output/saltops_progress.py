"""
One line per SaltOps progress event on ``salt-run``.

SaltOps runners name this outputter in their ``progress`` job events
(``saltops.runnerkit.fire_progress``); ``salt-run`` prints such an event with
it unless ``--out`` is given, so a step reads ``12:04:31 deploy 7 shop 1.4.2:
staging`` instead of a nested dict.  The event keeps all its data (on the
event bus, and with ``--out=json``); anything that is not a SaltOps progress
event is printed by the ``nested`` outputter as usual.
"""

import datetime

__virtualname__ = "saltops_progress"


def __virtual__():
    return __virtualname__


def output(data, **kwargs):  # pylint: disable=unused-argument
    """``HH:MM:SS message`` for ``{"suffix": ..., "event": {"message": ...}}``, else the nested view."""
    event = data.get("event") if isinstance(data, dict) else None
    if isinstance(event, dict) and isinstance(event.get("message"), str):
        # salt-run prints the event as it is fired, before Salt stamps its copy on the bus.
        stamp = str(event.get("_stamp") or datetime.datetime.now().isoformat())[11:19]
        return f"{stamp} {event['message']}"
    return __salt__["nested"](data, **kwargs)  # noqa: F821  (the outputters' loader)
