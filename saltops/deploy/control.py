"""Deploys already started: resume, abort and status.

Each first writes what a lost database could not take
(:mod:`saltops.deploy.journal`), so it acts on, and reports, every host the
deploy switched.
"""

from saltops.deploy import history, lock, status_machine
from saltops.deploy.driver import Driver, journal_of
from saltops.errors import Conflict


def _hint(run, counts):
    """What to do with a deploy whose runner is gone."""
    deploy_id = run["id"]
    gone = "its runner is gone (a killed salt-run, a restarted master or a lost database): "
    if run["status"] == status_machine.ROLLING_BACK:
        return gone + f"deploy.resume {deploy_id} or deploy.abort {deploy_id} finishes the rollback"
    switched = counts.get(status_machine.H_SWITCHED, 0)
    return gone + (
        f"deploy.resume {deploy_id} continues from batch {run['next_batch']}, "
        f"deploy.abort {deploy_id} rolls back the {switched} switched host(s)"
    )


def replay_journal(store, dconf, deploy_id=None):
    """Write outcomes journaled while the database was away into the history (one deploy or all)."""
    journal = journal_of(dconf)
    if journal is None:
        return {}
    if deploy_id is None:
        return journal.replay_all(store)
    return {deploy_id: journal.replay(store, deploy_id)}


def resume(store, dconf, deploy_id, executor, fire=None, progress=None, balancers=None, handoff=None):
    """Continue a paused deploy, one whose runner died (after ``lock_stale_after``),
    or one handed to this process (``handoff``, see :func:`saltops.deploy.lock.claim`)."""
    replay_journal(store, dconf, deploy_id)
    with store.begin() as conn:
        run = history.get_run(conn, deploy_id)
        if run["status"] in status_machine.TERMINAL:
            raise Conflict(f"deploy {deploy_id} is {run['status']}; there is nothing to resume")
        holder = lock.holder(conn, run["app"], run["env"])
        if holder is None or holder["id"] != run["id"]:
            raise Conflict(f"deploy {deploy_id} no longer holds the lock of {run['app']}/{run['env']}")
        lock.claim(conn, run["id"], takeover_stale_after=dconf["lock_stale_after"], handoff=handoff)
        if run["status"] == status_machine.PAUSED:
            history.set_status(conn, run["id"], status_machine.SWITCHING, event_data={"resumed": True})
        elif handoff is None or run["owner"] != handoff:
            history.event(
                conn, run["id"], "resumed", {"app": run["app"], "env": run["env"], "status": run["status"]}
            )
    return Driver(store, dconf, deploy_id, executor, fire, progress, balancers).execute()


def abort(store, dconf, deploy_id, executor, fire=None, progress=None, balancers=None):
    """Stop a deploy and roll back the hosts it switched.

    A deploy driven by a live process is asked to stop (it rolls back at the
    next batch boundary); a paused deploy, or one whose runner died, is rolled
    back here and now.
    """
    replay_journal(store, dconf, deploy_id)
    with store.begin() as conn:
        run = history.get_run(conn, deploy_id)
        if run["status"] in status_machine.TERMINAL:
            raise Conflict(f"deploy {deploy_id} is already {run['status']}")
        driven = run["status"] != status_machine.PAUSED and not lock.is_stale(run, dconf["lock_stale_after"])
        if driven and run["owner"] != lock.me():
            history.request_abort(conn, run["id"])
            history.event(conn, run["id"], "abort_requested", {"app": run["app"], "env": run["env"]})
            requested = True
        else:
            lock.claim(conn, run["id"], takeover_stale_after=dconf["lock_stale_after"])
            history.request_abort(conn, run["id"])
            if run["status"] in (status_machine.PENDING, status_machine.STAGING):
                history.set_status(
                    conn, run["id"], status_machine.ABORTED, error="aborted before any host switched"
                )
                lock.release(conn, run["app"], run["env"], run["id"])
            else:
                history.set_status(
                    conn,
                    run["id"],
                    status_machine.ROLLING_BACK,
                    event_data={"reason": "abort"},
                    error="aborted by request",
                )
            requested = False
    driver = Driver(store, dconf, deploy_id, executor, fire, progress, balancers)
    if requested:
        driver.flush_events()
        out = driver.describe()
        out["comment"] = f"deploy {deploy_id} is driven by {run['owner']}; it was asked to stop and roll back"
        return out
    if driver.run["status"] == status_machine.ROLLING_BACK:
        return driver.execute()
    driver.flush_events()
    return driver.describe()


def status(store, dconf, deploy_id=None, app=None, env=None):
    """One deploy in full, or the deploys that are not finished (with ``interrupted`` marking dead runners).

    Outcomes journaled while the database was away are written first, so the
    answer holds every host the deploy switched.
    """
    replayed = replay_journal(store, dconf, deploy_id)
    with store.connect() as conn:
        if deploy_id is not None:
            out = history.describe(conn, deploy_id)
            run = history.get_run(conn, deploy_id)
            out["runner_alive"] = lock.owner_alive(
                run["owner"], run["heartbeat_at"], dconf["lock_stale_after"]
            )
            out["stale"] = lock.is_stale(run, dconf["lock_stale_after"])
            if replayed.get(deploy_id):
                out["journal_replayed"] = replayed[deploy_id]
            if out["stale"]:
                out["hint"] = _hint(run, out["hosts_by_status"])
            return out
        active = history.list_runs(conn, app=app, env=env, statuses=sorted(status_machine.ACTIVE), limit=100)
        for item in active:
            run = history.get_run(conn, item["id"])
            item["stale"] = lock.is_stale(run, dconf["lock_stale_after"])
            item["owner"] = run["owner"]
        return active
