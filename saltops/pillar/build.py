"""The CMDB pillar of one minion, built from a snapshot (contract: docs/pillar.md).

* ``cmdb``: the host's record (``known: true``) with the snapshot's
  ``version`` and the ``stale``/``stale_since`` flags, or, for a minion id that
  is not a CMDB hostname, an explicit marker (``known: false``,
  ``status: unknown``, no roles): never an empty dict that a state could read
  as "no roles, remove everything".
* ``cmdb_lb``: for each balancer role of the host (``saltops:cmdb:lb_serves``),
  the online hosts of the served role in the host's env.
* ``deploy_slots``: on a balancer, the live blue/green slot of every app of
  its env that has one (``{app: {"active": "green"}}``), from
  :mod:`saltops.pillar.slots`.  A flip bumps the CMDB version, so the slot rows
  are read once per change and per worker, never per render.
"""

from saltops.pillar.outage import iso

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


def build(minion_id, view, lb_serves, live_slots=None, slots_source=None):
    """The pillar keys SaltOps adds for ``minion_id`` (``{"cmdb": ..., "cmdb_lb": ..., "deploy_slots": ...}``).

    ``live_slots`` is ``{env: {app: {"active": slot}}}``; the external pillar
    passes ``slots_source`` instead, the :class:`~saltops.pillar.slots.LiveSlots`
    of the snapshot cache that made ``view`` (read again only when the CMDB
    version moved).  With neither, there is no ``deploy_slots`` key.
    """
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
    source = slots_source if live_slots is None else None
    if not balancers:
        if source is not None:
            # Keep this worker's copy current (one query per CMDB change, none per
            # render), so that a balancer rendered during an outage still has it.
            source.prefetch(snap.version, bool(view.stale))
        return out
    out["cmdb_lb"] = balancers
    if live_slots is None and source is not None:
        live_slots = source.get(snap.version, bool(view.stale))
    if live_slots is not None:
        env = record.get("env")
        out["deploy_slots"] = {app: dict(slot) for app, slot in (live_slots.get(env) or {}).items()}
    return out
