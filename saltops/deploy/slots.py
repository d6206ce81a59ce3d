"""Blue/green: the live slot per app and env, as the balancers see it.

The live slot is a row of ``deploy_slots``.  Balancers read it from their
pillar (``deploy_slots``, beside ``cmdb_lb``), which is rendered from each
master worker's CMDB snapshot.  To keep a render free of extra queries, a
change of the live slot is a CMDB change too: :func:`record` writes the slot
row, bumps the CMDB change counter and writes one audit row per host of the
app (object ``host``, action ``deploy.flip``) in the caller's transaction.

* Every master worker's pillar snapshot sees the new counter at its next
  version check and :class:`saltops.pillar.slots.LiveSlots` reads the slot
  rows (:func:`live`) again only then: one small query per change, none per render.
* ``cmdb.refresh version=<that version>`` finds, in those audit rows, the
  balancers that serve the app's hosts in the env, refreshes their pillar and
  applies their balancer state: the flip reuses the CMDB's balancer loop.

No ``saltops/cmdb/changed`` event is queued for a flip: the deploy calls
``cmdb.refresh`` itself and waits for the balancers, and a reactor run beside
it would only apply the same state twice.
"""

import logging

import sqlalchemy as sa

from saltops.cmdb import repo
from saltops.cmdb import version as cmdb_version
from saltops.deploy import history
from saltops.deploy.schema import slots as slots_table
from saltops.store import audit

log = logging.getLogger(__name__)

SLOTS = ("blue", "green")
OTHER = {"blue": "green", "green": "blue"}
FLIP_ACTION = "deploy.flip"


def record(conn, app, env, active, versions, deploy_id, actor, reason="flip"):
    """Make ``active`` the live slot of ``app`` in ``env`` (``None``: no slot, as before any blue/green deploy).

    ``versions`` (``{"blue": .., "green": ..}``) updates what each slot holds.
    Runs in the caller's transaction; returns the CMDB version the change
    made, which ``cmdb.refresh`` takes to update the balancers.
    """
    if active is not None and active not in SLOTS:
        raise ValueError(f"slot must be one of {', '.join(SLOTS)} or None, got {active!r}")
    before = history.get_slots(conn, app, env)
    if active is None:
        conn.execute(slots_table.delete().where(slots_table.c.app == app, slots_table.c.env == env))
    else:
        history.set_slots(conn, app, env, active, versions, deploy_id)
    # The CMDB's own bump: a flip and a host write never share a version number.
    version = cmdb_version.bump(conn)
    was = before["active"] if before else None
    items = []
    for rec in repo.list_hosts(conn, app=app, env=env):
        base = {"hostname": rec["hostname"], "env": rec["env"], "roles": rec["roles"]}
        items.append(
            (
                rec["hostname"],
                dict(base, deploy_slot={app: was}),
                dict(base, deploy_slot={app: active}, deploy_id=deploy_id, reason=reason),
            )
        )
    if items:
        audit.record_many(conn, actor, FLIP_ACTION, "host", items, version)
    return version


def set_versions(conn, app, env, versions, deploy_id):
    """Record what the slots hold after a rolling deploy into the live slot (the live slot stays)."""
    current = history.get_slots(conn, app, env)
    if current is None:
        return
    history.set_slots(conn, app, env, current["active"], versions, deploy_id)


def live(conn):
    """``{env: {app: {"active": slot}}}`` for every app with a live slot."""
    out = {}
    for row in conn.execute(sa.select(slots_table.c.env, slots_table.c.app, slots_table.c.active)):
        out.setdefault(row.env, {})[row.app] = {"active": row.active}
    return out


def balancer_outcome(update):
    """What a flip's balancer update did, from a :class:`saltops.cmdb.balancers.BalancerUpdate`.

    ``None`` means no balancer update is wired in (the engine driven without
    Salt).  Returns ``{ok, applied, failed, skipped, test, warnings, error}``:
    the flip is good when no balancer state failed and at least one balancer
    applied it, or when no balancer serves the app's hosts at all.
    """
    out = {
        "ok": False,
        "applied": [],
        "failed": {},
        "skipped": {},
        "test": False,
        "warnings": [],
        "error": None,
    }
    if update is None:
        out["ok"] = True
        out["warnings"].append("no balancer update is wired in: only the live slot row changed")
        return out
    if update.error:
        out["error"] = f"the balancer update failed: {update.error}"
        return out
    failed = dict(update.failed)
    out.update(applied=list(update.applied), failed=failed, skipped=dict(update.skipped), test=update.test)
    if failed:
        first = min(failed)
        out["error"] = f"the balancer state failed on {', '.join(sorted(failed))} ({first}: {failed[first]})"
    elif not update.applied and out["skipped"]:
        reasons = "; ".join(f"{m}: {why}" for m, why in sorted(out["skipped"].items()))
        out["error"] = f"no balancer applied the new slot ({reasons})"
    else:
        out["ok"] = True
    if not update.balancers:
        out["warnings"].append(
            "no balancer serves the app's hosts in this env (saltops:cmdb:lb_serves): only each host's "
            "`current` follows the flip"
        )
    if out["skipped"] and out["ok"]:
        out["warnings"].append(f"balancers left out: {', '.join(sorted(out['skipped']))} (see skipped)")
    if out["test"]:
        out["warnings"].append(
            "the balancer states ran with test=True (saltops:cmdb:balancer_test): they changed nothing"
        )
    return out
