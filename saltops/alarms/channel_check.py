"""``alarm.test``: one message through one channel now, logged like any delivery."""

import logging
import time

import sqlalchemy as sa

from saltops.alarms.model import iso
from saltops.errors import NotFound, SaltOpsError
from saltops.notify import queue as notify_queue
from saltops.notify import registry
from saltops.notify.base import DeliveryError

log = logging.getLogger(__name__)


class NotDelivered(SaltOpsError):
    """The channel did not take the test message (the reason is the channel's error)."""


def payload(message, host, now):
    """An Alertmanager webhook (v4) body with one ``SaltOpsTest`` alert, as every channel renders it."""
    labels = {"alertname": "SaltOpsTest", "severity": "info", "host": host}
    return {
        "version": "4", "groupKey": "saltops-test", "truncatedAlerts": 0, "status": "firing",
        "receiver": "test", "groupLabels": {"alertname": "SaltOpsTest"},
        "commonLabels": {"alertname": "SaltOpsTest", "severity": "info"},
        "commonAnnotations": {"summary": str(message)}, "externalURL": "",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": str(message)},
                    "startsAt": iso(now), "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
                    "fingerprint": "0" * 16}],
    }


def send(store, notify_conf, channel, message, host):
    """Send a test message through ``channel`` and log the attempt in ``notify_deliveries``.

    Returns ``{"channel", "delivered", "seconds"}``; raises NotFound for a
    channel that is not configured and :class:`NotDelivered` when sending failed.
    A failure to log the attempt is only a warning: the message went out (or not) anyway.
    """
    channels = notify_conf["channels"]
    if channel not in channels:
        raise NotFound(f"no channel {channel!r} under saltops:notify:channels (defined: {sorted(channels)})")
    chan = registry.build({channel: channels[channel]}, notify_conf["timeout"])[channel]
    started = time.monotonic()
    error = None
    try:
        chan.send(payload(message, host, time.time()))
    except DeliveryError as err:
        error = str(err)
    elapsed = time.monotonic() - started
    try:
        with store.begin() as conn:
            notify_queue.record_attempt(conn, None, channel, 1, error is None, error, elapsed * 1000, time.time())
    except (SaltOpsError, sa.exc.SQLAlchemyError) as err:
        log.warning("test delivery not logged: %s", err)
    if error:
        raise NotDelivered(f"test message not delivered: {error}")
    return {"channel": channel, "delivered": True, "seconds": round(elapsed, 3)}
