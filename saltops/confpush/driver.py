"""Diff, drift, push and rollback of a config set, batch by batch, through an executor.

The executor runs Salt high data on hosts: ``executor.run_high({hostname:
high}, test, timeout)`` returns ``{hostname: state.high return or None}``
(``saltops.bridge.states.HighExecutor`` over Salt's LocalClient).  Every
template is rendered for every target before any host is touched; a push
holds the app/env lock, records every host's files with their sha256 and
stops at the first batch with a failed host, after that host's files were
put back.  The files it will write are in the store before any host is
touched, and each batch's Salt job ids as soon as it is published, so that
:func:`resume` and :func:`abort` can take up a push whose runner died.
"""

import time

from saltops.cmdb import repo as cmdb_repo
from saltops.confpush import lock, render, results, states
from saltops.confpush import store as cstore
from saltops.deploy.config import batch_size_of
from saltops.deploy.plan import make_plan
from saltops.errors import Conflict, NotFound, ValidationError

TARGET_STATUSES = ("online", "maintenance")


def targets(conn, app, env, hostnames=None, with_app=True):
    """CMDB records to push to: hosts with ``app`` in ``env`` (online or in maintenance).

    ``hostnames`` narrows them; with ``with_app=False`` (a migration to new
    hosts) the named hosts need not have the app yet, but must be in ``env``.
    """
    if hostnames:
        found = cmdb_repo.get_hosts(conn, hostnames)
        unknown = sorted(set(hostnames) - set(found))
        if unknown:
            raise NotFound(f"not in the CMDB: {', '.join(unknown)}")
        problems = []
        for name, rec in sorted(found.items()):
            if rec["env"] != env:
                problems.append(f"{name} is in env {rec['env']}, not {env}")
            elif with_app and app not in (rec.get("apps") or {}):
                problems.append(
                    f"{name} does not run {app} (CMDB apps: {', '.join(rec.get('apps') or {}) or 'none'})"
                )
            elif rec["status"] not in TARGET_STATUSES:
                problems.append(f"{name} is {rec['status']}")
        if problems:
            raise ValidationError("some hosts cannot take this set; nothing was changed", problems)
        return [found[n] for n in sorted(found)]
    records = [r for r in cmdb_repo.list_hosts(conn, app=app, env=env) if r["status"] in TARGET_STATUSES]
    if not records:
        raise NotFound(f"no online host runs {app} in {env} according to the CMDB")
    return records


def _paths(rendered):
    return {states.file_id(i): f["path"] for i, f in enumerate(rendered)}


def check(executor, spec, rendered_by_host, timeout):
    """Run the test-mode states: ``{hostname: {ok, files: {path: {changed, diff...}}, errors}}``."""
    highs = {h: states.check_high(spec, files, h) for h, files in rendered_by_host.items()}
    returns = executor.run_high(highs, True, timeout)
    out = {}
    for host, files in rendered_by_host.items():
        summary = results.summarize(returns.get(host), _paths(files))
        out[host] = {"ok": summary["ok"], "files": summary["files"], "errors": summary["errors"] or None}
        if summary["failed"]:
            out[host]["failed"] = summary["failed"]
    return out


def diff(store, executor, settings, app, env, version=None, hostnames=None, with_app=True):
    """What a push of ``version`` would change on each host, read from the minions; changes nothing."""
    with store.connect() as conn:
        stored = cstore.get_set(conn, app, env, version)
        records = targets(conn, app, env, hostnames, with_app)
    rendered = render.render_all(stored["spec"], app, records)
    hosts = check(executor, stored["spec"], rendered, settings["job_timeout"])
    return {
        "app": app,
        "env": env,
        "version": stored["version"],
        "hosts": hosts,
        "changes": sorted(h for h, r in hosts.items() if any(f.get("changed") for f in r["files"].values())),
    }


def drift(store, executor, settings, app, env, hostnames=None):
    """Hosts whose files differ from what the last push wrote there (a hand edit, a deleted file)."""
    with store.connect() as conn:
        records = targets(conn, app, env, hostnames)
        pushed = cstore.last_pushed(conn, app, env, [r["hostname"] for r in records])
        spec = cstore.get_set(conn, app, env)["spec"]
    never = sorted(r["hostname"] for r in records if r["hostname"] not in pushed)
    by_host = {h: sorted(files.values(), key=lambda f: f["path"]) for h, files in pushed.items()}
    # Each host is checked against the files of the push that wrote them, whose
    # options (owner, mode) are those of the current set where the path still exists.
    spec_all = dict(spec, files=list(spec["files"]))
    known = set()
    for host, files in by_host.items():
        mine = {render.host_path(item["path"], host) for item in spec["files"]}
        for f in files:
            if f["path"] not in mine and f["path"] not in known:
                spec_all["files"].append({"path": f["path"], "template": "", "action": "none"})
                known.add(f["path"])
    hosts = check(executor, spec_all, by_host, settings["job_timeout"]) if by_host else {}
    drifted = {h: sorted(p for p, f in r["files"].items() if f.get("changed")) for h, r in hosts.items()}
    return {
        "app": app,
        "env": env,
        "drifted": {h: p for h, p in drifted.items() if p},
        "unreachable": sorted(h for h, r in hosts.items() if r["errors"]),
        "never_pushed": never,
        "hosts": hosts,
    }


class Push:
    """One push: the plan, the lock, the batches, the record of every host's files."""

    def __init__(self, store, executor, settings, actor, progress=None, announce=None):
        """``progress(phase, data)`` reports to the caller; ``announce()`` fires the events committed so far."""
        self.store, self.executor, self.settings, self.actor = store, executor, settings, actor
        self.progress = progress or (lambda phase, data: None)
        self.announce = announce or (lambda: None)

    def start(
        self, app, env, stored, rendered_by_host, records, kind, batch_size=None, max_share=None, owner=None
    ):
        """Plan, take the lock and record the push; returns its id (or raises Conflict).

        ``owner``: who drives it (this process by default; a
        :func:`saltops.confpush.lock.handoff_owner` for a runner job started
        to drive it, which the lock counts as alive until that job claims it).
        """
        size = batch_size if batch_size is not None else self.settings["batch_size"]
        batch_size_of(size, len(records))
        share = self.settings["max_share"] if max_share is None else max_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise ValidationError(f"max_share must be a number in (0, 1], got {share!r}")
        plan = make_plan(records, "rolling", size, share)
        plan = {k: plan[k] for k in ("total", "batch_size", "max_share", "batches")}
        with self.store.begin() as conn:
            push_id = cstore.create_push(
                conn, self.actor, app, env, stored["version"], kind, plan, owner or lock.me()
            )
            lock.acquire(conn, app, env, push_id, self.settings["lock_stale_after"])
            cstore.plan_files(conn, push_id, rendered_by_host)
        self.app, self.env, self.id, self.plan = app, env, push_id, plan
        self.spec, self.version, self.outcome = stored["spec"], stored["version"], _outcome()
        self.rendered = {
            h: [dict(f, status=cstore.PLANNED) for f in files] for h, files in rendered_by_host.items()
        }
        return push_id

    def run(self, first=0, settle=None):
        """Push batch by batch from batch ``first``; returns the result (``status`` succeeded or failed).

        ``settle`` (a resumed push): ``(number, jobs)`` of the batch the dead
        runner had published; its returns are read back (hosts it never
        published to are published now) before the next batch.
        """
        status, error, current, failed = cstore.SUCCEEDED, None, first, {}
        try:
            if settle is not None:
                current, jobs = settle
                failed = self._settle_published(current, jobs)
                first = current + 1
            for number in range(first, len(self.plan["batches"])):
                if failed:
                    break
                current, hosts = number, self.plan["batches"][number]["hosts"]
                self.progress("batch", {"id": self.id, "batch": number, "hosts": hosts})
                failed = self._batch(number, hosts)
            if failed:
                status = cstore.FAILED
                error = f"batch {current} failed on {', '.join(sorted(failed))}; the push stopped"
        except Exception as err:  # noqa: BLE001 - recorded as the push's end, then shown to the caller
            status, error = cstore.FAILED, f"the push stopped: {type(err).__name__}: {err}"
        except BaseException as err:
            # The runner is being stopped: the push keeps its lock and says so;
            # confpush.resume or confpush.abort finishes it.
            with self.store.begin() as conn:
                cstore.stopped(
                    conn,
                    self.id,
                    f"its runner was stopped ({type(err).__name__}) at batch {current}; "
                    f"confpush.resume continues it, confpush.abort ends it",
                )
            raise
        return self.finish(status, error)

    def _settle_published(self, number, jobs):
        """Settle the batch a dead runner published, publishing now to the hosts it had not reached."""
        waiting = self.waiting(number)
        if not waiting:
            return {}
        missing = {h: states.push_high(self.spec, self.rendered[h], h) for h in waiting if h not in jobs}
        if missing:
            jobs = {**jobs, **self.executor.publish_high(missing, False)}
            with self.store.begin() as conn:
                cstore.batch_published(conn, self.id, number, jobs)
        return self.settle(number, waiting, jobs, cached=True)

    def finish(self, status, error):
        """Record the push's end, release the lock; returns the result."""
        outcome, waiting = self.outcome, self._waiting_hosts()
        for batch in self.plan["batches"]:
            outcome["not_reached"].extend(h for h in batch["hosts"] if h in waiting)
        summary = {k: (sorted(v) if isinstance(v, list) else v) for k, v in outcome.items()}
        with self.store.begin() as conn:
            cstore.finish_push(conn, self.actor, self.id, status, error, summary)
            lock.release(conn, self.app, self.env, self.id)
        self.progress(status, {"id": self.id, "error": error})
        return {
            "id": self.id,
            "app": self.app,
            "env": self.env,
            "version": self.version,
            "status": status,
            "error": error,
            **summary,
        }

    def _waiting_hosts(self):
        return {h for h, files in self.rendered.items() if any(f["status"] == cstore.PLANNED for f in files)}

    def waiting(self, number):
        """Hosts of batch ``number`` with nothing recorded yet."""
        waiting = self._waiting_hosts()
        return [h for h in self.plan["batches"][number]["hosts"] if h in waiting]

    def _batch(self, number, hosts):
        highs = {h: states.push_high(self.spec, self.rendered[h], h) for h in hosts}
        jobs = self.executor.publish_high(highs, False)
        with self.store.begin() as conn:
            cstore.batch_published(conn, self.id, number, jobs)
        return self.settle(number, hosts, jobs)

    def settle(self, number, hosts, jobs, cached=False):
        """Gather a published batch, put back the files of its failed hosts, then record it.

        The record comes last: a runner that dies before it leaves the batch
        to be settled again from the same jobs (putting files back twice is
        harmless: the kept copies are this push's).
        """
        deadline = time.monotonic() + self.settings["job_timeout"]
        returns = self.executor.gather_high({h: jobs[h] for h in hosts if h in jobs}, deadline, hosts, cached)
        failed, restore, done = {}, {}, {}
        for host in hosts:
            files = self.rendered[host]
            summary = results.summarize(returns.get(host), _paths(files))
            if host not in jobs:
                summary["errors"] = ["the job was never published to this host", *summary["errors"][1:]]
            changed = [p for p, f in summary["files"].items() if f.get("changed") and f.get("result")]
            if summary["ok"]:
                done[host] = changed
                continue
            reason = "; ".join([*(f"{k}: {v}" for k, v in summary["failed"].items()), *summary["errors"]])
            failed[host] = reason[:4000] or "failed"
            if changed:
                restore[host] = changed
        restored = self._restore(restore, failed) if restore else []
        with self.store.begin() as conn:
            for host, changed in done.items():
                files = self.rendered[host]
                written = [f for f in files if f["path"] in changed]
                cstore.record_files(conn, self.id, host, written, "pushed")
                same = [f for f in files if f["path"] not in changed]
                cstore.record_files(conn, self.id, host, same, "unchanged")
                self._mark(host, "pushed")
                (self.outcome["pushed"] if written else self.outcome["unchanged"]).append(host)
            for host, reason in failed.items():
                cstore.record_files(conn, self.id, host, self.rendered[host], "failed", reason)
                self._mark(host, "failed")
            cstore.batch_done(conn, self.id, self.app, self.env, number, hosts, failed, restored)
        self.outcome["failed"].update(failed)
        self.outcome["restored"].extend(restored)
        self.announce()
        self.progress("batch_done", {"id": self.id, "batch": number, "failed": sorted(failed)})
        return failed

    def _mark(self, host, status):
        for f in self.rendered[host]:
            f["status"] = status

    def _restore(self, restore, failed):
        """Put back the changed files of failed hosts; returns the hosts restored."""
        back = self.executor.run_high(
            {h: states.restore_high(self.spec, paths, h) for h, paths in restore.items()},
            False,
            self.settings["job_timeout"],
        )
        restored = []
        for host in restore:
            summary = results.summarize(back.get(host), {})
            if summary["ok"]:
                restored.append(host)
            else:
                failed[host] += (
                    " | restoring the previous files failed too: "
                    + "; ".join([*summary["failed"].values(), *summary["errors"]])[:2000]
                )
        return restored


def _outcome():
    return {"pushed": [], "unchanged": [], "failed": {}, "restored": [], "not_reached": []}


def reopen(push, push_id, verb, handoff=None):
    """Make ``push`` (a fresh :class:`Push`) the driver of push ``push_id``, whose runner is gone.

    Refuses (:class:`Conflict`) a finished push, one that lost its lock, and
    one whose runner still runs, unless that runner is ``handoff``: the owner
    the push was recorded with for this process's own runner job.  Returns the
    push's row.
    """
    with push.store.begin() as conn:
        row = cstore.get_push(conn, push_id)
        name = f"config push {push_id} of {row['app']}/{row['env']}"
        if row["status"] in cstore.TERMINAL:
            raise Conflict(f"{name} is {row['status']}; there is nothing to {verb}")
        if lock.holder(conn, row["app"], row["env"]) != row["id"]:
            raise Conflict(f"{name} no longer holds the lock of {row['app']}/{row['env']}")
        handed = handoff is not None and row["owner"] == handoff
        if not handed and lock.alive(row, push.settings["lock_stale_after"]):
            raise Conflict(
                f"{name} is still driven by {row['owner']}; stop that salt-run first "
                f"(a stopped runner leaves the push to confpush.resume or confpush.abort)"
            )
        if not cstore.claim(conn, push.actor, f"confpush.{verb}", row, lock.me()):
            raise Conflict(f"{name} changed hands meanwhile; try again")
        spec = cstore.get_set(conn, row["app"], row["env"], row["set_version"])["spec"]
        rendered = cstore.planned_files(conn, push_id)
    push.app, push.env, push.id, push.plan = row["app"], row["env"], row["id"], row["plan"]
    push.spec, push.version, push.rendered = spec, row["set_version"], rendered
    push.outcome = _outcome()
    for host, files in sorted(rendered.items()):
        statuses = {f["status"] for f in files}
        if "failed" in statuses:
            error = next(f["error"] for f in files if f["status"] == "failed")
            push.outcome["failed"][host] = error or "failed"
        elif "pushed" in statuses:
            push.outcome["pushed"].append(host)
        elif statuses == {"unchanged"}:
            push.outcome["unchanged"].append(host)
    return row


def resume(push, push_id, handoff=None):
    """Finish the batch the dead runner published (from Salt's job cache), then push the later batches.

    ``handoff``: see :func:`reopen` (a push recorded for a background job,
    which starts it from its first batch).
    """
    row = reopen(push, push_id, "resume", handoff)
    if push.outcome["failed"]:
        # The dead runner had recorded a failed batch: the push stops there.
        return push.finish(
            cstore.FAILED, f"a batch failed on {', '.join(sorted(push.outcome['failed']))}; the push stopped"
        )
    if row["batch"] is None:
        return push.run()
    return push.run(settle=(row["batch"], row["jobs"] or {}))


def abort(push, push_id):
    """End a push whose runner died: settle the batch it published, reach no other host.

    Hosts of finished batches keep what they were pushed (each passed its
    validator and health check); ``confpush.rollback`` puts them back.
    """
    row = reopen(push, push_id, "abort")
    failed = {}
    if row["batch"] is not None:
        jobs = row["jobs"] or {}
        published = [h for h in push.waiting(row["batch"]) if h in jobs]
        if published:
            failed = push.settle(row["batch"], published, jobs, cached=True)
    error = f"aborted by {push.actor}"
    if failed:
        error += f"; batch {row['batch']} failed on {', '.join(sorted(failed))}"
    return push.finish(cstore.ABORTED, error)


def render_targets(store, app, env, version=None, hostnames=None, with_app=True):
    """``(stored set, records, rendered_by_host)``; refuses before anything is touched."""
    with store.connect() as conn:
        stored = cstore.get_set(conn, app, env, version)
        records = targets(conn, app, env, hostnames, with_app)
    return stored, records, render.render_all(stored["spec"], app, records)


def rollback_contents(store, app, env, to, records):
    """For each host: the exact files pushed from set version ``to``, or that version rendered anew.

    Returns ``(stored set, rendered_by_host, rerendered hostnames)``.
    """
    with store.connect() as conn:
        stored = cstore.get_set(conn, app, env, to)
        recorded = cstore.last_pushed(conn, app, env, [r["hostname"] for r in records], set_version=to)
    out, fresh = {}, []
    for rec in records:
        host = rec["hostname"]
        kept = recorded.get(host) or {}
        paths = [render.host_path(f["path"], host) for f in stored["spec"]["files"]]
        if kept and set(kept) == set(paths):
            out[host] = [kept[p] for p in paths]
        else:
            out[host] = render.render_host(stored["spec"], app, rec)
            fresh.append(host)
    return stored, out, fresh
