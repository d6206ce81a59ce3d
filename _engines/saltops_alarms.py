"""
SaltOps alarms: a Salt engine that turns master-bus events into notifications.

Thin adapter over :mod:`saltops.alarms.service`.  It reads every event on the
master bus (beacons, job returns, minion starts) in one long-lived process,
so ingestion is not one runner call per event; it serves ``/metrics`` and the
Alertmanager webhook on ``saltops:alarms:listen_host``/``listen_port`` (cheroot;
the webhook only with ``webhook_token`` set, a non-loopback address only with
``behind_tls_proxy``); and it fires ``saltops/alarm/<fingerprint>/firing|resolved``
for ``reactor/``.  An endpoint that cannot be served is logged at WARNING or
ERROR with the reason, and the engine goes on without it.

Enable it in the master config::

    engines:
      - saltops_alarms: {}
    saltops:
      alarms:
        rules_file: /etc/salt/saltops/alarm-rules.yml

See ``docs/alarms.md``.
"""

import logging
import os

from saltops import config as saltops_config
from saltops.errors import SaltOpsError
from saltops.runnerkit import declined

log = logging.getLogger(__name__)

__virtualname__ = "saltops_alarms"


def __virtual__():
    try:
        from saltops.alarms import settings

        conf = saltops_config.load(__opts__)  # noqa: F821
        saltops_config.db_url(conf)
        alarms_conf, _notify = settings.load(conf)
    except SaltOpsError as err:
        return declined(__virtualname__, f"invalid configuration: {err}", log)
    path = alarms_conf["rules_file"]
    if not path:
        return declined(__virtualname__, "no alarm rules: set saltops:alarms:rules_file in the master config "
                        "(docs/alarms.md; salt/alarms/rules.yml in the SaltOps tree is a default set)", log)
    if not os.path.isfile(path):
        return declined(__virtualname__,
                        f"the rules file saltops:alarms:rules_file ({path}) does not exist", log)
    return __virtualname__


def start(**kwargs):
    """Run the alarm service until the master stops the engine."""
    from saltops.alarms.ingest import AcceptedKeys
    from saltops.alarms.lease import me
    from saltops.alarms.service import AlarmService
    from saltops.bridge.bus import BusReader, MasterBus
    from saltops.store import get_store

    opts = __opts__  # noqa: F821
    conf = saltops_config.load(opts)
    store = get_store(conf["db_url"], conf["db_options"])
    accepted = None
    if conf.get("alarms", {}).get("require_accepted_key", True):
        accepted = AcceptedKeys(opts.get("pki_dir") or "/etc/salt/pki/master")
    bus = MasterBus(opts)
    service = AlarmService(conf, store, accepted=accepted, fire=bus, holder=me(opts.get("id")))
    service.start()
    reader = service.attach_reader(
        BusReader(opts, service.submit_event, service.submit_garbage, service.stopping).start()
    )
    try:
        service.run()
    finally:
        service.stop()
        reader.join(5)
        bus.close()
        log.info("saltops_alarms engine stopped")
