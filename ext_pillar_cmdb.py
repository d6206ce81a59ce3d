"""SaltOps CMDB external pillar.

Gives every minion, whose id is its CMDB hostname, the pillar keys ``cmdb``
(its record, or an explicit ``known: false`` marker) and, on balancers,
``cmdb_lb`` (the online backends of the role it serves).  The contract is in
``docs/pillar.md``; the work is done by :mod:`saltops.cmdb.snapshot` and
:mod:`saltops.cmdb.pillar`.

Configuration (master config)::

    ext_pillar:
      - saltops_cmdb: {}

    saltops:
      db_url: mysql+pymysql://saltops:secret@db.example.com/saltops
      cmdb:
        version_check_interval: 0     # seconds between two checks of the CMDB version
        snapshot_file: /var/cache/salt/master/saltops/cmdb-snapshot.msgpack

When the database cannot be read the last known good data is served with
``cmdb:stale: true``; when this master never read it, the render raises, Salt
puts the error in ``_errors`` and ``state.apply`` refuses to run.
"""

import logging

from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    from saltops import config as _config
    from saltops.cmdb import outage as _outage
    from saltops.cmdb import pillar as _pillar
    from saltops.cmdb import snapshot as _snapshot
    from saltops.deploy import slots as _slots
    from saltops.errors import SaltOpsError

    _IMPORT_ERROR = None
except Exception as _err:  # noqa: BLE001  # pylint: disable=broad-except
    # Keep the module loadable: Salt silently skips an ext_pillar whose module
    # fails to import, and states would then run without CMDB data.
    _IMPORT_ERROR = _err

log = logging.getLogger(__name__)

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
        conf = _config.load({"saltops": opts.get("saltops"), "cachedir": opts.get("cachedir")})
        cache = _snapshot.cache_for(conf, fire=_outage.master_fire(opts))
        view = cache.current()
    except SaltOpsError as err:
        raise CommandExecutionError(f"SaltOps CMDB pillar: {err}") from err
    return _pillar.build(minion_id, view, conf["cmdb"]["lb_serves"], slots_source=_slots.for_snapshot_cache(cache))
