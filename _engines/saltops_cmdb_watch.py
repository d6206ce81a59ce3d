"""Watch a CMDB outage to its end, even when no pillar is rendered.

The external pillar notices an outage when it renders, and its end at the next
render.  With ``pillar_cache`` on, the master answers from its cache and may
render nothing for a long time, so the end of the outage would go unannounced
and minions would keep their stale (or failed) pillar.  This engine checks,
every ``interval`` seconds, whether an outage is open (one ``stat`` of the
marker file) and, only then, whether the database answers; when it does it
fires ``saltops/cmdb/recovered`` (once for the whole master), which
``reactor/cmdb_recovered.sls`` turns into a pillar refresh of every minion.

Master config::

    engines:
      - saltops_cmdb_watch:
          interval: 10
"""

import logging
import time

try:
    from saltops import config as _config
    from saltops.bridge import events as _events
    from saltops.errors import SaltOpsError
    from saltops.pillar import cache as _cache
    from saltops.runnerkit import declined

    _IMPORT_ERROR = None
except Exception as _err:  # noqa: BLE001  # pylint: disable=broad-except
    _IMPORT_ERROR = _err

log = logging.getLogger(__name__)

__virtualname__ = "saltops_cmdb_watch"


def __virtual__():
    if _IMPORT_ERROR is not None:
        # Salt's loader would swallow this at DEBUG: say it where the master log shows it.
        log.warning("saltops_cmdb_watch not started: importing the saltops package failed: %r", _IMPORT_ERROR)
        return False, f"saltops_cmdb_watch: importing the saltops package failed: {_IMPORT_ERROR!r}"
    try:
        _config.db_url(_config.load(__opts__))  # noqa: F821
    except SaltOpsError as err:
        return declined(__virtualname__, f"invalid configuration: {err}", log)
    return __virtualname__


def start(interval=10):
    """Run the watch loop (Salt starts it in its own process)."""
    try:
        interval = float(interval)
    except (TypeError, ValueError):
        interval = 0
    if interval <= 0:
        log.error("saltops_cmdb_watch: interval must be a positive number of seconds, using 10")
        interval = 10.0
    conf = _config.load(__opts__)  # noqa: F821
    cache = _cache.cache_for(conf, fire=_events.master_fire(__opts__))  # noqa: F821
    log.info("saltops_cmdb_watch: checking for CMDB outages every %ss", interval)
    while True:
        try:
            result = cache.probe()
            if result == "recovered":
                log.warning("saltops_cmdb_watch: the CMDB database is back; announced saltops/cmdb/recovered")
        except Exception:  # pylint: disable=broad-except
            log.exception("saltops_cmdb_watch: outage check failed")
        time.sleep(interval)
