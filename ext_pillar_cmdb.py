"""SaltOps CMDB external pillar.

Gives every minion, whose id is its CMDB hostname, the pillar keys ``cmdb``
(its record, or an explicit ``known: false`` marker) and, on balancers,
``cmdb_lb`` (the online backends of the role it serves).  The contract is in
``docs/pillar.md``; the work is done by :mod:`saltops.pillar`.

Configuration (master config)::

    ext_pillar:
      - saltops_cmdb: {}

    saltops:
      db_url: mysql+pymysql://saltops:secret@db.example.com/saltops
      cmdb:
        version_check_interval: 1     # bound on how long another master's write stays unseen
        snapshot_file: /var/cache/salt/master/saltops/cmdb-snapshot.msgpack

When the database cannot be read the last known good data is served with
``cmdb:stale: true``; when this master never read it, the render raises, Salt
puts the error in ``_errors`` and ``state.apply`` refuses to run.
"""

import logging

from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    from saltops import config as _config
    from saltops.bridge import events as _events
    from saltops.errors import ConfigError, SaltOpsError
    from saltops.failurelog import FailureLog
    from saltops.pillar import build as _build
    from saltops.pillar import cache as _cache
    from saltops.pillar import slots as _slots

    _IMPORT_ERROR = None
except Exception as _err:  # noqa: BLE001  # pylint: disable=broad-except
    # Keep the module loadable: Salt silently skips an ext_pillar whose module
    # fails to import, and states would then run without CMDB data.
    _IMPORT_ERROR = _err

log = logging.getLogger(__name__)

# Salt logs a raising ext_pillar as a bare traceback; the reason goes in the master log
# here (at most once a minute per worker), and in the minion's pillar `_errors`.
_CONFIG_PROBLEMS = FailureLog(log, "the SaltOps CMDB pillar cannot run") if _IMPORT_ERROR is None else None

__virtualname__ = "saltops_cmdb"


def __virtual__():
    # Never (False, reason) here, on purpose: Salt drops an ext_pillar whose
    # __virtual__ fails with only a log line and compiles pillar without it, so
    # a broken installation would look like "no CMDB data".  Every problem
    # (import, configuration, database) is raised by ext_pillar() instead, which
    # puts it in the pillar's _errors and makes state.apply refuse.
    return __virtualname__


def ext_pillar(minion_id, pillar, **kwargs):  # pylint: disable=unused-argument
    """Return the ``cmdb`` (and ``cmdb_lb``) pillar keys for ``minion_id``."""
    if _IMPORT_ERROR is not None:
        raise CommandExecutionError(
            f"the SaltOps CMDB pillar cannot run: importing the saltops package failed "
            f"({_IMPORT_ERROR!r}); reinstall SaltOps into the salt-master's Python"
        )
    if kwargs:
        raise SaltInvocationError(
            f"ext_pillar saltops_cmdb takes no options (got {', '.join(sorted(map(str, kwargs)))}); "
            "configure it under 'saltops:cmdb' in the master config"
        )
    try:
        # Only the two keys config.load reads: Salt's opts mapping is large and
        # slow to test for truth (its len() walks every key).
        opts = __opts__  # noqa: F821
        conf = _config.load_cached({"saltops": opts.get("saltops"), "cachedir": opts.get("cachedir")})
        cache = _cache.cache_for(conf, fire=_events.master_fire(opts))
        view = cache.current()
    except ConfigError as err:
        _CONFIG_PROBLEMS.failed(err)
        raise CommandExecutionError(f"SaltOps CMDB pillar: {err}") from err
    except SaltOpsError as err:
        raise CommandExecutionError(f"SaltOps CMDB pillar: {err}") from err
    return _build.build(minion_id, view, conf["cmdb"]["lb_serves"], slots_source=_slots.for_snapshot_cache(cache))
