"""What the core asks of Salt, through callables a Salt adapter hands in.

The core never imports ``salt.client``: a runner builds :class:`SaltCalls` from
a factory of Salt's ``LocalClient``, a factory of the master event bus, the
exception types those raise when the master cannot be reached, and a progress
callback (``__jid_event__``).  The core then publishes jobs, waits for the
minions that answer, fires events and reports progress through it, and gets a
:class:`SaltUnreachable` (a :class:`~saltops.errors.SaltOpsError`) with a
message a user can act on instead of Salt's exceptions.
"""

from contextlib import contextmanager

from saltops.errors import SaltOpsError


class SaltUnreachable(SaltOpsError):
    """The master (or its event bus) could not be asked to do something."""


def answered(raw):
    """``{minion: (return, retcode)}`` for the minions that really answered a ``full_return`` call.

    With ``full_return`` an answer is ``{"ret": ..., "retcode": ...}``; Salt
    marks a minion that did not answer with ``False``, ``{"failed": True}`` or
    ``{"out": "no_return", "ret": "Minion did not return..."}``.
    """
    return {
        minion: (data["ret"], data.get("retcode"))
        for minion, data in (raw or {}).items()
        if isinstance(data, dict) and "ret" in data and not data.get("failed") and data.get("out") != "no_return"
    }


class SaltCalls:
    """Jobs to minions, events on the master bus and progress, for the core.

    ``local``: a callable returning a ``LocalClient`` (called once, when the
    first job is published); ``bus``: a callable returning a master event
    object with ``fire_event(data, tag)`` and ``destroy()``; ``errors``: the
    exception types meaning "the master is not there"; ``progress``: a
    callable ``(message, data)`` or ``None``.
    """

    def __init__(self, local=None, bus=None, errors=(), progress=None):
        self._local_factory = local
        self._local = None
        self._bus = bus
        self._errors = tuple(errors)
        self._progress = progress

    def _client(self):
        if self._local is None:
            if self._local_factory is None:
                raise SaltUnreachable("no Salt client was given to talk to minions")
            try:
                self._local = self._local_factory()
            except self._errors as err:
                raise SaltUnreachable(f"cannot reach the Salt master to talk to minions: {err}") from None
        return self._local

    def publish(self, tgt, fun, arg=(), kwarg=None, tgt_type="list"):
        """Publish ``fun`` without waiting; the job id, or ``None`` when no minion matched."""
        try:
            jid = self._client().cmd_async(tgt, fun, list(arg), tgt_type=tgt_type, kwarg=kwarg or {})
        except self._errors as err:
            raise SaltUnreachable(f"could not publish {fun}: {err}") from None
        return jid or None

    def run(self, tgt, fun, arg=(), kwarg=None, tgt_type="list", timeout=10, gather_job_timeout=None):
        """Run ``fun`` and wait up to ``timeout`` seconds: :func:`answered` of the minions that did."""
        extra = {} if gather_job_timeout is None else {"gather_job_timeout": gather_job_timeout}
        try:
            raw = self._client().cmd(
                tgt, fun, list(arg), kwarg=kwarg or {}, tgt_type=tgt_type, timeout=timeout, full_return=True, **extra
            )
        except self._errors as err:
            raise SaltUnreachable(f"could not publish {fun}: {err}") from None
        return answered(raw)

    @contextmanager
    def firing(self):
        """A ``fire(tag, data)`` over one master bus connection for the block.

        ``fire`` raises :class:`SaltUnreachable` when the bus is not there or
        does not take the event (the outbox then keeps it for the next flush).
        """
        if self._bus is None:
            raise SaltUnreachable("no master event bus was given")
        try:
            bus, problem = self._bus(), None
        except self._errors as err:
            bus, problem = None, err

        def fire(tag, data):
            if bus is None:
                raise SaltUnreachable(f"cannot reach the master event bus: {problem}")
            if not bus.fire_event(dict(data), tag):
                raise SaltUnreachable("the master event bus did not take the event")

        try:
            yield fire
        finally:
            if bus is not None:
                bus.destroy()

    def progress(self, message, **data):
        """Tell whoever follows the job (``salt-run`` prints it, salt-api streams it)."""
        if self._progress is not None:
            self._progress(message, data)
