"""Salt's clients for the core: :class:`saltops.saltcalls.SaltCalls` and the master's minion keys."""

from saltops.saltcalls import SaltCalls


def salt_calls(opts, progress=None):
    """A :class:`SaltCalls` over a master's ``LocalClient`` and event bus, made when first used.

    ``progress``: ``(message, data)`` -> None, e.g. a runner's ``__jid_event__``.
    """
    import salt.client  # pylint: disable=import-outside-toplevel
    import salt.utils.event  # pylint: disable=import-outside-toplevel
    from salt.exceptions import SaltClientError, SaltReqTimeoutError  # pylint: disable=import-outside-toplevel

    return SaltCalls(
        local=lambda: salt.client.get_local_client(mopts=opts),
        bus=lambda: salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False),
        # OSError: the master's sockets are not there (a master that is not running);
        # SaltReqTimeoutError: its request server did not take the job in time (a busy master).
        errors=(SaltClientError, SaltReqTimeoutError, OSError),
        progress=progress,
    )


def minion_keys(opts):
    """The master's minion ids by key state: ``{accepted, pending, rejected, denied}``."""
    import salt.key  # pylint: disable=import-outside-toplevel

    listed = salt.key.get_key(opts).list_keys()
    return {
        "accepted": listed.get("minions", []),
        "pending": listed.get("minions_pre", []),
        "rejected": listed.get("minions_rejected", []),
        "denied": listed.get("minions_denied", []),
    }
