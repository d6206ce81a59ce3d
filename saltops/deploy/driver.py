"""Driving one deploy through its phases: pre-stage, batches, rollback.

The driver talks to minions only through an *executor*: an object with

    call(fun, hostnames, args, settings_by_host, timeout, kwargs=None) -> {hostname: report or None}

that runs the ``saltops_release`` execution module function ``fun`` on the
hosts (each with its own CMDB app settings) and returns each host's report, or
``None`` for a host that did not answer.  The runner passes one built on Salt's
LocalClient.  ``fire(tag, data)`` fires the outbox events after each commit;
``progress(phase, data)`` reports progress to whoever watches (the CLI);
``balancers(cmdb_version)`` updates the balancers after a blue/green flip and
returns what ``cmdb.refresh version=<cmdb_version> wait=True`` returns.

Phases, in order (each one a committed status, so a deploy can be resumed):

``pending`` -> ``staging`` (download + verify on every host; a bad checksum
anywhere fails the deploy with nothing switched) -> ``switching`` (batches;
canary first; blue/green: install into the idle slot, then flip, see
:mod:`saltops.deploy.bluegreen`) -> ``succeeded``; or -> ``rolling_back`` ->
``rolled_back`` / ``rollback_failed`` / ``aborted``.

Host outcomes are facts: when the database cannot take them they are
journaled (:mod:`saltops.deploy.journal`) and the deploy stops at the batch
boundary if the database stays away.
"""

import logging
import threading
import time

from saltops.deploy import history, lock, slots, status_machine
from saltops.deploy.bluegreen import BlueGreen
from saltops.deploy.journal import Journal
from saltops.errors import Conflict, SaltOpsError, StoreUnavailable
from saltops.store import outbox

log = logging.getLogger(__name__)

MODULE = "saltops_release"
# Host statuses that count as failed for max_failures.
_BAD = (
    status_machine.H_FAILED,
    status_machine.H_UNREACHABLE,
    status_machine.H_SKIPPED,
    status_machine.H_ROLLED_BACK,
    status_machine.H_ROLLBACK_FAILED,
    status_machine.H_NO_PREVIOUS,
)


class DeployStopped(StoreUnavailable):
    """The database went away and did not come back in time: the deploy stopped at a batch boundary."""


def journal_of(dconf):
    """The journal of ``dconf["journal_dir"]`` (``None`` when unset)."""
    return Journal(dconf["journal_dir"]) if dconf.get("journal_dir") else None


class _Heartbeat(threading.Thread):
    def __init__(self, store, deploy_id, owner, interval):
        super().__init__(name=f"deploy-{deploy_id}-heartbeat", daemon=True)
        self.store, self.deploy_id, self.owner, self.interval = store, deploy_id, owner, interval
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(self.interval):
            try:
                with self.store.begin() as conn:
                    history.touch(conn, self.deploy_id, self.owner)
            except Exception as err:  # noqa: BLE001 - a database hiccup must not kill the deploy
                log.warning("deploy %s: heartbeat failed: %s", self.deploy_id, err)



def host_outcome(ret, ok_status, failed_status):
    """``(host row update, ok)`` for one minion's report of a stage or switch call (``None``: no answer)."""
    if ret is None:
        return {"status": status_machine.H_UNREACHABLE, "error": "no answer from the minion"}, False
    if ret.get("result"):
        return {"status": ok_status, "steps": ret.get("steps"), "error": None}, True
    return {"status": failed_status, "steps": ret.get("steps"), "error": ret.get("comment")}, False

class Driver(BlueGreen):
    """Drives one deploy to a terminal (or paused) status."""

    def __init__(self, store, dconf, deploy_id, executor, fire=None, progress=None, balancers=None):
        self.store = store
        self.dconf = dconf
        self.id = int(deploy_id)
        self.executor = executor
        self.fire = fire
        self.progress_cb = progress
        self.balancers = balancers
        self.journal = journal_of(dconf)
        if self.journal:
            self.journal.replay(store, self.id)
        with store.connect() as conn:
            self.run = history.get_run(conn, self.id)
        self.opts = dict(self.dconf, **self.run["options"])
        self.app = self.run["app"]
        self.version = self.run["version"]

    # ---------------------------------------------------------------- plumbing

    def flush_events(self):
        if self.fire is not None:
            try:
                outbox.flush(self.store, self.fire)
            except Exception as err:  # noqa: BLE001 - events stay pending for the next flush
                log.warning("deploy %s: could not flush events: %s", self.id, err)

    def report(self, phase, **data):
        if self.progress_cb is not None:
            try:
                self.progress_cb(phase, dict(data, id=self.id, app=self.app, version=self.version))
            except Exception as err:  # noqa: BLE001 - progress is best effort
                log.debug("deploy %s: progress callback failed: %s", self.id, err)

    def move_to(self, new, event_data=None, hosts=None, **values):
        """Move to ``new`` (with ``hosts`` updates in the same transaction), then fire its events."""
        with self.store.begin() as conn:
            self._status_in(conn, new, event_data, hosts, **values)
        self.flush_events()
        self.report(new, **(event_data or {}))

    def _status_in(self, conn, new, event_data=None, hosts=None, **values):
        if hosts:
            history.set_hosts(conn, self.id, hosts)
        self.run = history.set_status(conn, self.id, new, event_data=event_data, **values)
        if new in status_machine.TERMINAL:
            lock.release(conn, self.app, self.run["env"], self.id)

    def host_rows(self, statuses=None, batch=None):
        with self.store.connect() as conn:
            return history.host_rows(conn, self.id, statuses, batch)

    def abort_requested(self, conn=None):
        if conn is None:
            with self.store.connect() as own:
                return self.abort_requested(own)
        run = history.get_run(conn, self.id)
        if run["owner"] != lock.me():
            raise Conflict(f"deploy {self.id} was taken over by {run['owner']}; stopping here")
        return bool(run["abort_requested"])

    def call(self, fun, rows, args, kwargs=None):
        settings = {r["hostname"]: r["settings"] for r in rows}
        if kwargs:
            return self.executor.call(
                f"{MODULE}.{fun}", sorted(settings), list(args), settings, self.opts["job_timeout"], kwargs
            )
        return self.executor.call(
            f"{MODULE}.{fun}", sorted(settings), list(args), settings, self.opts["job_timeout"]
        )

    def _begin_call(self, fun, rows, args, kwargs=None):
        """Publish ``fun`` now and return a function that gathers the returns.

        The database writes of a step then happen while the minions work.  An
        executor without ``publish``/``gather`` is called at once.
        """
        if not rows:
            return dict
        publish = getattr(self.executor, "publish", None)
        if publish is None:
            rets = self.call(fun, rows, args, kwargs)
            return lambda: rets
        settings = {r["hostname"]: r["settings"] for r in rows}
        handle = publish(f"{MODULE}.{fun}", sorted(settings), list(args), settings, kwargs)
        return lambda: self.executor.gather(handle, self.opts["job_timeout"])

    def _slot_kwargs(self):
        """Rolling and canary deploys of an app with a live blue/green slot go into that slot."""
        if self.run["strategy"] == "blue_green" or not self.run["slot"]:
            return None
        return {"slot": self.run["slot"]}

    def _confirm_lost(self, rows, rets, version, kwargs=None):
        """Ask again the hosts whose return was lost when *no* host of a call answered.

        No answer at all is the mark of a lost bus (a restarted master) more
        than of dead minions: a minion may well have switched.  For up to
        ``master_wait`` seconds the hosts are asked (through a fresh client)
        whether ``version`` is live and healthy; an answer replaces the lost
        return, a host still silent stays unanswered.
        """
        missing = [r for r in rows if rets.get(r["hostname"]) is None]
        if not rows or len(missing) < len(rows):
            return rets
        rets = dict(rets)
        self.report("returns_lost", hosts=[r["hostname"] for r in missing])
        deadline = time.monotonic() + self.opts["master_wait"]
        while missing and time.monotonic() < deadline:
            reconnect = getattr(self.executor, "reconnect", None)
            if reconnect is not None:
                reconnect()
            try:
                answers = self.call("health", missing, [self.app], dict(kwargs or {}, version=version))
            except SaltOpsError as err:
                log.warning("deploy %s: asking again failed: %s", self.id, err)
                answers = {}
            for row in missing:
                ret = answers.get(row["hostname"])
                if ret is None:
                    continue
                live = ret.get("live")
                ok = bool(ret.get("result")) and live == version
                rets[row["hostname"]] = {
                    "result": ok,
                    "steps": ret.get("steps"),
                    "comment": (
                        f"its return was lost; asked again: {version} is live and healthy"
                        if ok
                        else f"its return was lost; asked again: {live or 'no release'} is live"
                        + (f" ({ret.get('comment')})" if not ret.get("result") else "")
                    ),
                }
            missing = [r for r in missing if rets.get(r["hostname"]) is None]
            if missing:
                time.sleep(max(0.0, min(2.0, deadline - time.monotonic())))
        return rets

    def _keep_outcomes(self, batch, updates):
        """Record hosts' outcomes; while the database is away, journal them and wait for it.

        Raises :class:`DeployStopped` when the database is not back within
        ``store_wait`` seconds: the deploy stops at this batch boundary, with
        the outcomes in the journal for the next ``deploy.status``/``resume``.
        """
        try:
            with self.store.begin() as conn:
                history.set_hosts(conn, self.id, updates)
            return
        except StoreUnavailable as err:
            lost = err
        where = self.journal.record(self.id, batch, updates) if self.journal else None
        switched = sorted(h for h, v in updates.items() if v.get("status") == status_machine.H_SWITCHED)
        log.warning(
            "deploy %s: the database went away after batch %s (%s); outcomes journaled in %s",
            self.id,
            batch,
            lost,
            where,
        )
        self.report("store_lost", batch=batch, journal=where, switched=switched)
        deadline = time.monotonic() + self.opts["store_wait"]
        while True:
            time.sleep(max(0.0, min(2.0, deadline - time.monotonic())))
            try:
                if self.journal:
                    self.journal.replay(self.store, self.id)
                else:
                    with self.store.begin() as conn:
                        history.set_hosts(conn, self.id, updates)
                self.report("store_back", batch=batch)
                return
            except StoreUnavailable as err:
                lost = err
            if time.monotonic() >= deadline:
                break
        kept = (
            f"journaled in {where}"
            if where
            else "NOT journaled (no journal_dir): "
            + ", ".join(f"{h}={v.get('status')}" for h, v in sorted(updates.items()))
        )
        raise DeployStopped(
            f"deploy {self.id}: the database went away at batch {batch} and was not back after "
            f"{self.opts['store_wait']:.0f} s ({lost}); the deploy stops here, nothing more is switched. "
            f"Switched in that batch: {', '.join(switched) or 'none'}; the hosts' outcomes are {kept}. "
            f"Once the database is back, deploy.status {self.id} shows them and deploy.resume {self.id} "
            f"continues (deploy.abort {self.id} rolls back)"
        )

    # ---------------------------------------------------------------- phases

    def execute(self):
        """Run from the current status; return the deploy as :func:`history.describe` shows it."""
        beat = _Heartbeat(self.store, self.id, lock.me(), self.opts["heartbeat_interval"])
        beat.start()
        try:
            if self.run["status"] in (status_machine.PENDING, status_machine.STAGING) and not self._stage():
                return self.describe()
            if self.run["status"] == status_machine.SWITCHING:
                if self.run["strategy"] == "blue_green":
                    self.blue_green()
                else:
                    self._batches()
            if self.run["status"] == status_machine.ROLLING_BACK:
                self._rollback()
        except Conflict as err:
            log.warning("deploy %s stopped: %s", self.id, err)
            raise
        finally:
            beat.stopped.set()
            self.flush_events()
        return self.describe()

    def describe(self):
        with self.store.connect() as conn:
            return history.describe(conn, self.id)

    def _stage(self):
        rows = self.host_rows([status_machine.H_PENDING, status_machine.H_UNREACHABLE])
        plan = self.run["plan"]
        if plan.get("flip_only"):
            # Instant blue/green rollback: nothing to download; check that the
            # idle slot still answers healthy with the release it holds.
            self.report("checking_slot", slot=plan["slot"], hosts=len(rows))
            gather = self._begin_call(
                "health", rows, [self.app], {"version": self.version, "slot": plan["slot"]}
            )
        else:
            self.report("staging", hosts=len(rows))
            gather = self._begin_call(
                "stage", rows, [self.app, self.version, self.run["artifact"], self.run["sha256"]]
            )
        if self.run["status"] == status_machine.PENDING:
            # Recorded while the minions download.
            self.move_to(status_machine.STAGING, {"hosts": self.run["plan"]["total"]})
        rets = gather()
        if plan.get("flip_only"):
            rets = {h: (dict(r, current=plan.get("live_version")) if r else r) for h, r in rets.items()}
        updates, bad_sum, failed = {}, [], []
        for row in rows:
            ret = rets.get(row["hostname"])
            update, ok = host_outcome(ret, status_machine.H_STAGED, status_machine.H_STAGE_FAILED)
            updates[row["hostname"]] = update
            if ok:
                update["previous_version"] = ret.get("current")
            else:
                failed.append(row["hostname"])
                if ret is not None and "checksum mismatch" in (ret.get("comment") or ""):
                    bad_sum.append(row["hostname"])
        first = updates[failed[0]]["error"] if failed else None
        new, data, values = (
            status_machine.SWITCHING,
            {"staged": len(rows) - len(failed), "skipped": failed},
            {},
        )
        if bad_sum:
            sample = updates[bad_sum[0]]["error"]
            new, data = status_machine.FAILED, {"hosts": bad_sum}
            values["error"] = f"checksum mismatch on {len(bad_sum)} host(s) ({sample}); nothing was switched"
        elif failed and plan.get("flip_only"):
            new, data = status_machine.FAILED, {"hosts": failed}
            values["error"] = (
                f"slot {plan['slot']} is not healthy with {self.version} on {len(failed)} host(s), "
                f"first: {failed[0]}: {first}; nothing was flipped, traffic stays on slot "
                f"{plan.get('live_slot')} (deploy.rollback instant=False installs {self.version} again)"
            )
        elif failed and self.run["strategy"] == "blue_green":
            # Every host takes traffic on the new slot after the flip: none may be left out.
            new, data = status_machine.FAILED, {"hosts": failed}
            values["error"] = (
                f"pre-stage failed on {len(failed)} host(s), first: {failed[0]}: {first}; blue/green "
                "flips every host at once, so nothing was switched"
            )
        elif len(failed) > self.opts["max_failures"]:
            new, data = status_machine.FAILED, {"hosts": failed}
            values["error"] = (
                f"pre-stage failed on {len(failed)} host(s) (max_failures={self.opts['max_failures']}), "
                f"first: {failed[0]}: {first}; nothing was switched"
            )
        # One transaction: the hosts' results, the abort check and the next status.
        with self.store.begin() as conn:
            history.set_hosts(conn, self.id, updates)
            if self.abort_requested(conn):
                new, data = status_machine.ABORTED, None
                values = {"error": "aborted during pre-stage; nothing was switched"}
            elif new == status_machine.SWITCHING and failed:
                history.set_hosts(conn, self.id, {h: {"status": status_machine.H_SKIPPED} for h in failed})
            self._status_in(conn, new, data, **values)
        self.flush_events()
        self.report(new, **(data or {}))
        return new == status_machine.SWITCHING

    def switch_updates(self, rows, rets):
        """Host updates from switch/install reports; returns (updates, failed hostnames)."""
        updates, failed = {}, []
        for row in rows:
            ret = rets.get(row["hostname"])
            update, ok = host_outcome(ret, status_machine.H_SWITCHED, status_machine.H_FAILED)
            updates[row["hostname"]] = update
            if not ok:
                failed.append(row["hostname"])
            if ret is not None and ret.get("previous") and not row["previous_version"]:
                updates[row["hostname"]]["previous_version"] = ret["previous"]
        return updates, failed

    def _batches(self):
        plan = self.run["plan"]["batches"]
        if self.run["slot"] is None and self.run["next_batch"] == 0:
            with self.store.connect() as conn:
                live = history.get_slots(conn, self.app, self.run["env"])
            if live is not None:
                with self.store.begin() as conn:
                    history.set_slot(conn, self.id, live["active"])
                self.run["slot"] = live["active"]
        if self.run["next_batch"] >= len(plan):
            # Every batch is done (a deploy resumed after its last batch).
            with self.store.begin() as conn:
                new, data = self._after_batch(
                    conn, len(plan) - 1, True, False, history.count_hosts(conn, self.id, _BAD)
                )
            self.flush_events()
            self.report(new, **data)
            return
        for number in range(self.run["next_batch"], len(plan)):
            batch = plan[number]
            with self.store.connect() as conn:
                aborted = self.abort_requested(conn)
                rows = [] if aborted else history.host_rows(conn, self.id, [status_machine.H_STAGED], number)
            if aborted:
                self.move_to(
                    status_machine.ROLLING_BACK, {"reason": "abort requested"}, error="aborted by request"
                )
                return
            names = [r["hostname"] for r in rows]
            self.report("batch", batch=number, kind=batch["kind"], hosts=names)
            gather = self._begin_call("switch", rows, [self.app, self.version], self._slot_kwargs())
            # Recorded while the minions switch; only bookkeeping, so a lost
            # database must not stop the gathering of what the minions did.
            try:
                with self.store.begin() as conn:
                    history.set_batch(conn, self.id, number, "running")
                    history.event(
                        conn,
                        self.id,
                        "batch",
                        {
                            "app": self.app,
                            "version": self.version,
                            "batch": number,
                            "kind": batch["kind"],
                            "hosts": names,
                        },
                    )
            except StoreUnavailable as err:
                log.warning("deploy %s: batch %s started without its record: %s", self.id, number, err)
            self.flush_events()
            rets = self._confirm_lost(rows, gather(), self.version, self._slot_kwargs())
            updates, _ = self.switch_updates(rows, rets)
            # The hosts' outcomes first: they are facts even if the database is away.
            self._keep_outcomes(number, updates)
            last = number + 1 == len(plan)
            pause = batch["kind"] == "canary" and self.opts["pause"] and not last
            # One transaction: the batch, the failure count and the next status, all read
            # from the store (so a resumed deploy decides from what was recorded).
            with self.store.begin() as conn:
                bad = history.host_rows(
                    conn, self.id, [status_machine.H_FAILED, status_machine.H_UNREACHABLE], number
                )
                failed = [r["hostname"] for r in bad]
                first = bad[0]["error"] if bad else "earlier failures"
                history.set_batch(conn, self.id, number, "failed" if failed else "done", failed=len(failed))
                total_failed = history.count_hosts(conn, self.id, _BAD)
                if failed and batch["kind"] == "canary":
                    new, data = status_machine.ROLLING_BACK, {"reason": "canary failed", "hosts": failed}
                    self._status_in(conn, new, data, error=f"canary failed on {', '.join(failed)}: {first}")
                elif total_failed > self.opts["max_failures"]:
                    new, data = status_machine.ROLLING_BACK, {"reason": "too many failures", "hosts": failed}
                    self._status_in(
                        conn,
                        new,
                        data,
                        error=(
                            f"{total_failed} host(s) failed (max_failures={self.opts['max_failures']}), "
                            f"batch {number}: {', '.join(failed)}: {first}"
                        ),
                    )
                elif failed:
                    new, data = None, None
                else:
                    new, data = self._after_batch(conn, number, last, pause, total_failed)
            self.flush_events()
            self.report("batch_done", batch=number, failed=failed)
            if new is None:
                # Tolerated failures: put those hosts back on their previous release now.
                self._rollback_hosts(
                    self.host_rows([status_machine.H_FAILED, status_machine.H_UNREACHABLE], batch=number)
                )
                with self.store.begin() as conn:
                    total_failed = history.count_hosts(conn, self.id, _BAD)
                    new, data = self._after_batch(conn, number, last, pause, total_failed)
                self.flush_events()
            if new != status_machine.SWITCHING:
                if new == status_machine.PAUSED:
                    self.report("paused", batch=number, hint=f"salt-run deploy.resume {self.id}")
                else:
                    self.report(new, **(data or {}))
                return

    def _after_batch(self, conn, number, last, pause, total_failed):
        """The status after a batch that did not stop the deploy, set in ``conn``; returns (status, event data)."""
        if last:
            if self.run["slot"]:
                # The balancers keep sending traffic to the same slot, which now holds this release.
                slots.set_versions(conn, self.app, self.run["env"], {self.run["slot"]: self.version}, self.id)
            data = {"hosts": self.run["plan"]["total"] - total_failed}
            self._status_in(conn, status_machine.SUCCEEDED, data)
            return status_machine.SUCCEEDED, data
        new = status_machine.PAUSED if pause else status_machine.SWITCHING
        data = {"batch": number, "next_batch": number + 1}
        self._status_in(conn, new, data, next_batch=number + 1, **({"owner": None} if pause else {}))
        return new, data

    def _rollback_hosts(self, rows):
        """Put ``rows`` back on their previous release; returns the hostnames that failed."""
        by_version = {}
        no_previous = []
        for row in rows:
            if row["previous_version"]:
                by_version.setdefault(row["previous_version"], []).append(row)
            else:
                no_previous.append(row["hostname"])
        updates = {h: {"status": status_machine.H_NO_PREVIOUS} for h in no_previous}
        failed = []
        for version, group in sorted(by_version.items()):
            self.report("rolling_back", to=version, hosts=[r["hostname"] for r in group])
            rets = self._confirm_lost(
                group,
                self.call("rollback", group, [self.app, version], self._slot_kwargs()),
                version,
                self._slot_kwargs(),
            )
            for row in group:
                ret = rets.get(row["hostname"])
                if ret is not None and ret.get("result"):
                    updates[row["hostname"]] = {"status": status_machine.H_ROLLED_BACK}
                else:
                    reason = "no answer from the minion" if ret is None else ret.get("comment")
                    updates[row["hostname"]] = {
                        "status": status_machine.H_ROLLBACK_FAILED,
                        "error": f"rollback to {version} failed: {reason}",
                    }
                    failed.append(row["hostname"])
        self._keep_outcomes("rollback", updates)
        return failed

    def _rollback(self):
        if self.run["strategy"] == "blue_green":
            failed = self.rollback_blue_green()
        else:
            failed = self._rollback_hosts(self.host_rows(status_machine.NEEDS_ROLLBACK))
        if failed:
            self.move_to(
                status_machine.ROLLBACK_FAILED,
                {"hosts": failed},
                error=(self.run["error"] or "") + f"; rollback failed on {', '.join(failed)}",
            )
        elif self.run["abort_requested"] or (self.run["error"] or "").startswith("aborted"):
            self.move_to(status_machine.ABORTED, error=self.run["error"] or "aborted by request")
        else:
            self.move_to(status_machine.ROLLED_BACK, error=self.run["error"])
