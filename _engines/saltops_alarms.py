"""
SaltOps alarms: a Salt engine that turns master-bus events into notifications.

Thin adapter over :mod:`saltops.alarms.service`.  It reads every event on the
master bus (beacons, job returns, minion starts) in one long-lived process,
so ingestion is not one runner call per event; it serves ``/metrics`` and the
Alertmanager webhook on ``saltops:alarms:listen_host``/``listen_port``; and it
fires ``saltops/alarm/<fingerprint>/firing|resolved`` for ``reactor/``.

Enable it in the master config::

    engines:
      - saltops_alarms: {}
    saltops:
      alarms:
        rules_file: /etc/salt/saltops/alarm-rules.yml

See ``docs/alarms.md``.
"""

import logging

import salt.utils.event

from saltops import config as saltops_config
from saltops.errors import SaltOpsError

log = logging.getLogger(__name__)

__virtualname__ = "saltops_alarms"


def __virtual__():
    try:
        from saltops.alarms import settings

        conf = saltops_config.load(__opts__)  # noqa: F821
        alarms_conf, _notify = settings.load(conf)
    except SaltOpsError as err:
        return False, f"saltops_alarms: invalid configuration: {err}"
    if not alarms_conf["rules_file"]:
        return False, "saltops_alarms: set saltops:alarms:rules_file in the master config"
    return __virtualname__


def start(**kwargs):
    """Run the alarm service until the master stops the engine."""
    from saltops.alarms.ingest import AcceptedKeys
    from saltops.alarms.service import AlarmService
    from saltops.store import get_store

    opts = __opts__  # noqa: F821
    conf = saltops_config.load(opts)
    store = get_store(conf["db_url"], conf["db_options"])
    accepted = None
    if conf.get("alarms", {}).get("require_accepted_key", True):
        accepted = AcceptedKeys(opts.get("pki_dir") or "/etc/salt/pki/master")
    firer = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False)
    service = AlarmService(conf, store, accepted=accepted, fire=firer.fire_event)
    service.start()
    reader = service.read_bus(opts)
    try:
        service.run()
    finally:
        service.stop()
        reader.join(5)
        log.info("saltops_alarms engine stopped")
