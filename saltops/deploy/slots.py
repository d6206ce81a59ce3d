"""Blue/green: the live slot per app and env, as the balancers see it.

The live slot is a row of ``deploy_slots``.  Balancers read it from their
pillar (``deploy_slots``, beside ``cmdb_lb``), which is rendered from each
master worker's CMDB snapshot.  To keep a render free of extra queries, a
change of the live slot is a CMDB change too: :func:`record` writes the slot
row, bumps the CMDB change counter and writes one audit row per host of the
app (object ``host``, action ``deploy.flip``) in the caller's transaction.

* Every worker's snapshot sees the new counter at its next version check (the
  one query a render makes anyway) and :class:`LiveSlots` reads the slot rows
  again only then: one small query per change, none per render.
* ``cmdb.refresh version=<that version>`` finds, in those audit rows, the
  balancers that serve the app's hosts in the env, refreshes their pillar and
  applies their balancer state: the flip reuses the CMDB's balancer loop.

No ``saltops/cmdb/changed`` event is queued for a flip: the deploy calls
``cmdb.refresh`` itself and waits for the balancers, and a reactor run beside
it would only apply the same state twice.
"""

import json
import logging
import os
import threading
import weakref

import sqlalchemy as sa

from saltops.cmdb import repo
from saltops.deploy import history
from saltops.deploy.schema import slots as slots_table
from saltops.errors import StoreUnavailable
from saltops.store import audit
from saltops.store.schema import meta

log = logging.getLogger(__name__)

SLOTS = ("blue", "green")
OTHER = {"blue": "green", "green": "blue"}
FLIP_ACTION = "deploy.flip"

# Errors that mean "the database cannot be read right now".
_DB_ERRORS = (sa.exc.SQLAlchemyError, StoreUnavailable, OSError)


def _bump_cmdb_version(conn):
    # The same statement as the CMDB's own writes: the UPDATE takes the row
    # lock, so a flip and a CMDB write never share a version number.
    conn.execute(meta.update().where(meta.c.name == repo.VERSION_KEY).values(value=meta.c.value + 1))
    return repo.current_version(conn)


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
    version = _bump_cmdb_version(conn)
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


class SlotsUnavailable(StoreUnavailable):
    """The live slots cannot be read and none were read before."""


class LiveSlots:
    """One worker's copy of :func:`live`, read again only when the CMDB version moved.

    ``source`` gives the store to read from; ``backup_file`` (optional) keeps
    the last rows read, for a worker that starts while the database is down.
    """

    def __init__(self, source, backup_file=None):
        self.source = source
        self.backup_file = backup_file
        self.version = None
        self.data = None
        self.lock = threading.Lock()
        self.reads = 0

    def prefetch(self, version, stale=False):
        """Read the slots for ``version`` if not read yet (any render calls this: a balancer
        rendered first during an outage then still has them); never raises."""
        if stale or (self.data is not None and self.version == version):
            return
        try:
            self.get(version)
        except SlotsUnavailable:
            pass

    def get(self, version, stale=False):
        """The live slots for a render at CMDB ``version`` (``stale``: the database is known to be down)."""
        with self.lock:
            if self.data is not None and (self.version == version or stale):
                return self.data
            if not stale:
                try:
                    with self.source().connect() as conn:
                        data = live(conn)
                except _DB_ERRORS as err:
                    log.warning("cannot read the live blue/green slots: %s", err)
                else:
                    self.reads += 1
                    self.version, self.data = version, data
                    self._save(data)
                    return data
            if self.data is None:
                self.data = self._load()
            if self.data is None:
                raise SlotsUnavailable(
                    "the live blue/green slots (table deploy_slots) cannot be read and this master has "
                    "no copy of them: a balancer's pillar is not rendered rather than route traffic to "
                    "the wrong slot; it recovers when the database answers"
                )
            return self.data

    def _save(self, data):
        if not self.backup_file:
            return
        try:
            text = json.dumps(data, sort_keys=True)
            try:
                with open(self.backup_file, encoding="utf-8") as fh:
                    if fh.read() == text:
                        return
            except OSError:
                pass
            os.makedirs(os.path.dirname(os.path.abspath(self.backup_file)), exist_ok=True)
            tmp = f"{self.backup_file}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, self.backup_file)
        except OSError as err:
            log.warning("could not write %s: %s", self.backup_file, err)

    def _load(self):
        if not self.backup_file:
            return None
        try:
            with open(self.backup_file, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


_CACHES = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def for_snapshot_cache(cache):
    """The :class:`LiveSlots` of a CMDB :class:`~saltops.cmdb.snapshot.SnapshotCache` (same database)."""
    from saltops.store import get_store

    with _CACHES_LOCK:
        found = _CACHES.get(cache)
        if found is None:
            backup = f"{cache.snapshot_file}.slots.json" if cache.snapshot_file else None
            found = LiveSlots(
                lambda: get_store(cache.db_url, cache.db_options, migrate=cache.migrate), backup
            )
            _CACHES[cache] = found
        return found


def _state_problem(summary):
    if not isinstance(summary, dict):
        return "no state result"
    if summary.get("errors"):
        return "; ".join(summary["errors"])[:500]
    if summary.get("failed"):
        return "; ".join(f"{sid}: {comment}" for sid, comment in sorted(summary["failed"].items()))[:500]
    return f"state run failed (retcode {summary.get('retcode')})"


def balancer_outcome(result):
    """What a flip's balancer update did, from ``cmdb.refresh ... wait=True``'s return.

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
    if result is None:
        out["ok"] = True
        out["warnings"].append("no balancer update is wired in: only the live slot row changed")
        return out
    if not isinstance(result, dict) or result.get("result") is False or result.get("error"):
        reason = result.get("error") if isinstance(result, dict) else result
        out["error"] = f"cmdb.refresh failed: {reason}"
        return out
    results = result.get("apply_results") or {}
    applied = sorted(result.get("applied") or {})
    failed = {m: _state_problem(results.get(m)) for m in applied if not (results.get(m) or {}).get("result")}
    out.update(
        applied=[m for m in applied if m not in failed],
        failed=failed,
        skipped=dict(result.get("apply_skipped") or {}),
        test=bool(result.get("apply_test")),
    )
    if failed:
        first = min(failed)
        out["error"] = f"the balancer state failed on {', '.join(sorted(failed))} ({first}: {failed[first]})"
    elif not applied and out["skipped"]:
        reasons = "; ".join(f"{m}: {why}" for m, why in sorted(out["skipped"].items()))
        out["error"] = f"no balancer applied the new slot ({reasons})"
    else:
        out["ok"] = True
    if not result.get("balancers"):
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
