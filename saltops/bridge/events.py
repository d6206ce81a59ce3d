"""Firing events on the master's event bus from a process that is not the master's loop."""

import threading

# Seconds to wait for the master event bus when firing one event.
FIRE_TIMEOUT = 5


def master_fire(opts):
    """A ``fire(tag, data)`` callable that puts events on the master's event bus.

    Each event is fired from a short-lived thread, which keeps the event
    client's own IO loop away from whatever loop the calling process runs
    (master workers, engines).  The callable returns ``True`` when the bus took
    the event.  It serves rare events (the CMDB outage events are rate-limited),
    so the thread costs nothing.
    """
    import salt.utils.event  # pylint: disable=import-outside-toplevel

    def fire(tag, data):
        result = {}

        def run():
            try:
                with salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False) as bus:
                    result["ok"] = bool(bus.fire_event(dict(data), tag))
            except Exception as err:  # noqa: BLE001  # pylint: disable=broad-except
                result["error"] = err

        thread = threading.Thread(target=run, name="saltops-master-event", daemon=True)
        thread.start()
        thread.join(FIRE_TIMEOUT)
        if "error" in result:
            raise result["error"]
        return result.get("ok", False)

    return fire
