"""The CMDB pillar of one minion, built from a snapshot (contract: docs/pillar.md).

* ``cmdb``: the host's record (``known: true``) with the snapshot's
  ``version`` and the ``stale``/``stale_since`` flags, or, for a minion id that
  is not a CMDB hostname, an explicit marker (``known: false``,
  ``status: unknown``, no roles): never an empty dict that a state could read
  as "no roles, remove everything".
* ``cmdb_lb``: for each balancer role of the host (``saltops:cmdb:lb_serves``),
  the online hosts of the served role in the host's env.
"""

from saltops.cmdb.outage import iso

UNKNOWN_REASON = "minion id is not a CMDB hostname"


def _flags(view):
    return {
        "version": view.snapshot.version,
        "stale": bool(view.stale),
        "stale_since": iso(view.stale_since) if view.stale else None,
    }


def unknown(minion_id, view):
    """The marker for a minion the CMDB does not know."""
    return {
        "known": False,
        "hostname": minion_id,
        "status": "unknown",
        "roles": [],
        "reason": UNKNOWN_REASON,
        **_flags(view),
    }


def build(minion_id, view, lb_serves):
    """The pillar keys SaltOps adds for ``minion_id`` (``{"cmdb": ..., "cmdb_lb": ...}``)."""
    snap = view.snapshot
    record = snap.record(minion_id) if isinstance(minion_id, str) else None
    if record is None:
        return {"cmdb": unknown(minion_id, view)}
    cmdb = {"known": True}
    cmdb.update(record)
    cmdb.update(_flags(view))
    out = {"cmdb": cmdb}
    balancers = {}
    for role in record.get("roles") or ():
        served = lb_serves.get(role)
        if not served:
            continue
        balancers[role] = {
            "serves": served,
            "env": record.get("env"),
            "backends": snap.backends(served, record.get("env")),
        }
    if balancers:
        out["cmdb_lb"] = balancers
    return out
