"""Running a deploy: pre-stage everywhere, switch in batches, roll back on failure.

The engine talks to minions only through an *executor*: an object with

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
canary first; blue/green: install into the idle slot, then flip) ->
``succeeded``; or -> ``rolling_back`` -> ``rolled_back`` / ``rollback_failed``
/ ``aborted``.
"""

import logging
import re
import threading

from saltops.deploy import config as dconfig
from saltops.deploy import history, lock, machine, slots
from saltops.deploy import plan as planner
from saltops.deploy import targets as cmdb_targets
from saltops.errors import Conflict, NotFound, ValidationError
from saltops.store import outbox

log = logging.getLogger(__name__)

MODULE = "saltops_release"
_APP = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_ARTIFACT = re.compile(r"^(https?://|salt://)\S+$")
_OTHER_SLOT = slots.OTHER
# Host statuses that count as failed for max_failures.
_BAD = (
    machine.H_FAILED,
    machine.H_UNREACHABLE,
    machine.H_SKIPPED,
    machine.H_ROLLED_BACK,
    machine.H_ROLLBACK_FAILED,
    machine.H_NO_PREVIOUS,
)


def validate_request(app, env, version, artifact, sha256, envs=None):
    """Check a deploy request; raise :class:`ValidationError` listing every problem."""
    problems = []
    if not isinstance(app, str) or not _APP.match(app):
        problems.append(f"app {app!r} is not an app name (lowercase letters, digits, _ and -)")
    if not isinstance(env, str) or not env or (envs and env not in envs):
        problems.append(f"env {env!r} is not one of {', '.join(envs or [])}")
    version = None if version is None else str(version)
    if not version or not _VERSION.match(version) or ".." in version:
        problems.append(f"version {version!r} is invalid: 1-64 letters, digits, '.', '_', '-', '+'")
    if not isinstance(artifact, str) or not _ARTIFACT.match(artifact) or len(artifact) > 1024:
        problems.append(f"artifact {artifact!r} must be an http://, https:// or salt:// URL")
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        problems.append("sha256 must be the 64 hexadecimal characters of the artifact's SHA-256")
    if problems:
        raise ValidationError("invalid deploy request; nothing was changed", problems)
    return {"app": app, "env": env, "version": version, "artifact": artifact, "sha256": sha256.lower()}


def preview(store, dconf, app, env, overrides=None):
    """The plan a deploy would follow (targets and batches); changes nothing."""
    opts = dconfig.options(dconf, overrides)
    with store.connect() as conn:
        records = cmdb_targets.targets(conn, app, env)
        slots = history.get_slots(conn, app, env)
        holder = lock.holder(conn, app, env)
    if not records:
        raise ValidationError(f"no online host in env {env!r} runs app {app!r} according to the CMDB")
    plan = planner.make_plan(
        records, opts["strategy"], opts["batch_size"], opts["max_share"], opts["canary_size"]
    )
    plan["worst_share"] = {k: round(v, 3) for k, v in planner.worst_share(plan, records).items()}
    if opts["strategy"] == "blue_green":
        active = slots["active"] if slots else None
        plan["slots"] = {"active": active, "install_into": _OTHER_SLOT.get(active, "blue")}
    plan["locked_by"] = holder["id"] if holder and holder["status"] not in machine.TERMINAL else None
    plan["options"] = {k: opts[k] for k in dconfig.PER_DEPLOY}
    return plan


def start(store, dconf, request, actor, overrides=None, kind="deploy", rollback_of=None, plan_extra=None):
    """Plan, lock and record a new deploy (status ``pending``); return its id.

    ``plan_extra`` is merged into the stored plan (``flip_only``, ``slot``,
    ``live_version`` for an instant blue/green rollback).  Raises
    :class:`Conflict` when another deploy of the app to the env runs.
    """
    opts = dconfig.options(dconf, overrides)
    app, env = request["app"], request["env"]
    with store.begin() as conn:
        records = cmdb_targets.targets(conn, app, env)
        if not records:
            raise ValidationError(f"no online host in env {env!r} runs app {app!r} according to the CMDB")
        plan = planner.make_plan(
            records, opts["strategy"], opts["batch_size"], opts["max_share"], opts["canary_size"]
        )
        plan.update(plan_extra or {})
        request = dict(request, options={k: opts[k] for k in dconfig.PER_DEPLOY})
        deploy_id = history.create_run(conn, request, plan, actor, lock.me(), records, kind, rollback_of)
        recovered = lock.acquire(conn, app, env, deploy_id, dconf["lock_stale_after"])
        if recovered:
            history.event(
                conn, recovered, machine.INTERRUPTED, {"app": app, "env": env, "superseded_by": deploy_id}
            )
    return deploy_id


def rollback_request(store, app, env, to=None):
    """The request that brings ``app`` in ``env`` back to ``to`` (or to the release before the live one).

    The artifact and checksum come from the history, so a release no longer on
    the hosts' disks is fetched again.  ``instant`` is set when the app's idle
    blue/green slot still holds that release: the rollback is then a flip of
    the balancers back to it (the plan extras for :func:`start`).  Raises
    :class:`NotFound` when there is nothing recorded to go back to.
    """
    with store.connect() as conn:
        good = history.succeeded(conn, app, env)
        row = history.get_slots(conn, app, env)
    if not good:
        raise NotFound(f"{app} has no successful deploy to {env} on record; nothing to roll back to")
    live = good[0]
    if to is None:
        older = [r for r in good if r["version"] != live["version"]]
        if not older:
            raise NotFound(
                f"{app} {live['version']} is the only release ever deployed successfully to {env}; "
                "nothing older to roll back to"
            )
        target = older[0]
    else:
        to = str(to)
        matches = [r for r in good if r["version"] == to]
        if not matches:
            known = ", ".join(dict.fromkeys(r["version"] for r in good))
            raise NotFound(
                f"{app} {to} was never deployed successfully to {env}, so its artifact is unknown "
                f"(known good: {known}); deploy it with deploy.run"
            )
        target = matches[0]
    out = {
        "app": app,
        "env": env,
        "version": target["version"],
        "artifact": target["artifact"],
        "sha256": target["sha256"],
        "from_version": live["version"],
        "from_deploy": live["id"],
        "strategy": target["strategy"],
        "instant": None,
    }
    if row is not None:
        idle = _OTHER_SLOT[row["active"]]
        if row[f"{idle}_version"] == target["version"]:
            # The idle slot still runs that release: flip back, install nothing.
            out["instant"] = {
                "flip_only": True,
                "slot": idle,
                "live_slot": row["active"],
                "live_version": row[f"{row['active']}_version"],
            }
    return out


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


class Driver:
    """Drives one deploy to a terminal (or paused) status."""

    def __init__(self, store, dconf, deploy_id, executor, fire=None, progress=None, balancers=None):
        self.store = store
        self.dconf = dconf
        self.id = int(deploy_id)
        self.executor = executor
        self.fire = fire
        self.progress_cb = progress
        self.balancers = balancers
        with store.connect() as conn:
            self.run = history.get_run(conn, self.id)
        self.opts = dict(self.dconf, **self.run["options"])
        self.app = self.run["app"]
        self.version = self.run["version"]

    # ---------------------------------------------------------------- plumbing

    def _flush(self):
        if self.fire is not None:
            try:
                outbox.flush(self.store, self.fire)
            except Exception as err:  # noqa: BLE001 - events stay pending for the next flush
                log.warning("deploy %s: could not flush events: %s", self.id, err)

    def _progress(self, phase, **data):
        if self.progress_cb is not None:
            try:
                self.progress_cb(phase, dict(data, id=self.id, app=self.app, version=self.version))
            except Exception as err:  # noqa: BLE001 - progress is best effort
                log.debug("deploy %s: progress callback failed: %s", self.id, err)

    def _status(self, new, event_data=None, hosts=None, **values):
        """Move to ``new`` (with ``hosts`` updates in the same transaction), then fire its events."""
        with self.store.begin() as conn:
            self._status_in(conn, new, event_data, hosts, **values)
        self._flush()
        self._progress(new, **(event_data or {}))

    def _status_in(self, conn, new, event_data=None, hosts=None, **values):
        if hosts:
            history.set_hosts(conn, self.id, hosts)
        self.run = history.set_status(conn, self.id, new, event_data=event_data, **values)
        if new in machine.TERMINAL:
            lock.release(conn, self.app, self.run["env"], self.id)

    def _hosts(self, statuses=None, batch=None):
        with self.store.connect() as conn:
            return history.host_rows(conn, self.id, statuses, batch)

    def _abort_requested(self, conn=None):
        if conn is None:
            with self.store.connect() as own:
                return self._abort_requested(own)
        run = history.get_run(conn, self.id)
        if run["owner"] != lock.me():
            raise Conflict(f"deploy {self.id} was taken over by {run['owner']}; stopping here")
        return bool(run["abort_requested"])

    def _call(self, fun, rows, args, kwargs=None):
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
            rets = self._call(fun, rows, args, kwargs)
            return lambda: rets
        settings = {r["hostname"]: r["settings"] for r in rows}
        handle = publish(f"{MODULE}.{fun}", sorted(settings), list(args), settings, kwargs)
        return lambda: self.executor.gather(handle, self.opts["job_timeout"])

    def _slot_kwargs(self):
        """Rolling and canary deploys of an app with a live blue/green slot go into that slot."""
        if self.run["strategy"] == "blue_green" or not self.run["slot"]:
            return None
        return {"slot": self.run["slot"]}

    # ---------------------------------------------------------------- phases

    def execute(self):
        """Run from the current status; return the deploy as :func:`history.describe` shows it."""
        beat = _Heartbeat(self.store, self.id, lock.me(), self.opts["heartbeat_interval"])
        beat.start()
        try:
            if self.run["status"] in (machine.PENDING, machine.STAGING) and not self._stage():
                return self.describe()
            if self.run["status"] == machine.SWITCHING:
                if self.run["strategy"] == "blue_green":
                    self._blue_green()
                else:
                    self._batches()
            if self.run["status"] == machine.ROLLING_BACK:
                self._rollback()
        except Conflict as err:
            log.warning("deploy %s stopped: %s", self.id, err)
            raise
        finally:
            beat.stopped.set()
            self._flush()
        return self.describe()

    def describe(self):
        with self.store.connect() as conn:
            return history.describe(conn, self.id)

    def _stage(self):
        rows = self._hosts([machine.H_PENDING, machine.H_UNREACHABLE])
        plan = self.run["plan"]
        if plan.get("flip_only"):
            # Instant blue/green rollback: nothing to download; check that the
            # idle slot still answers healthy with the release it holds.
            self._progress("checking_slot", slot=plan["slot"], hosts=len(rows))
            gather = self._begin_call(
                "health", rows, [self.app], {"version": self.version, "slot": plan["slot"]}
            )
        else:
            self._progress("staging", hosts=len(rows))
            gather = self._begin_call(
                "stage", rows, [self.app, self.version, self.run["artifact"], self.run["sha256"]]
            )
        if self.run["status"] == machine.PENDING:
            # Recorded while the minions download.
            self._status(machine.STAGING, {"hosts": self.run["plan"]["total"]})
        rets = gather()
        if plan.get("flip_only"):
            rets = {h: (dict(r, current=plan.get("live_version")) if r else r) for h, r in rets.items()}
        updates, bad_sum, failed = {}, [], []
        for row in rows:
            ret = rets.get(row["hostname"])
            if ret is None:
                updates[row["hostname"]] = {
                    "status": machine.H_UNREACHABLE,
                    "error": "no answer from the minion",
                }
                failed.append(row["hostname"])
            elif ret.get("result"):
                updates[row["hostname"]] = {
                    "status": machine.H_STAGED,
                    "steps": ret.get("steps"),
                    "previous_version": ret.get("current"),
                    "error": None,
                }
            else:
                updates[row["hostname"]] = {
                    "status": machine.H_STAGE_FAILED,
                    "steps": ret.get("steps"),
                    "error": ret.get("comment"),
                }
                failed.append(row["hostname"])
                if "checksum mismatch" in (ret.get("comment") or ""):
                    bad_sum.append(row["hostname"])
        first = updates[failed[0]]["error"] if failed else None
        new, data, values = machine.SWITCHING, {"staged": len(rows) - len(failed), "skipped": failed}, {}
        if bad_sum:
            sample = updates[bad_sum[0]]["error"]
            new, data = machine.FAILED, {"hosts": bad_sum}
            values["error"] = f"checksum mismatch on {len(bad_sum)} host(s) ({sample}); nothing was switched"
        elif failed and plan.get("flip_only"):
            new, data = machine.FAILED, {"hosts": failed}
            values["error"] = (
                f"slot {plan['slot']} is not healthy with {self.version} on {len(failed)} host(s), "
                f"first: {failed[0]}: {first}; nothing was flipped, traffic stays on slot "
                f"{plan.get('live_slot')} (deploy.rollback instant=False installs {self.version} again)"
            )
        elif failed and self.run["strategy"] == "blue_green":
            # Every host takes traffic on the new slot after the flip: none may be left out.
            new, data = machine.FAILED, {"hosts": failed}
            values["error"] = (
                f"pre-stage failed on {len(failed)} host(s), first: {failed[0]}: {first}; blue/green "
                "flips every host at once, so nothing was switched"
            )
        elif len(failed) > self.opts["max_failures"]:
            new, data = machine.FAILED, {"hosts": failed}
            values["error"] = (
                f"pre-stage failed on {len(failed)} host(s) (max_failures={self.opts['max_failures']}), "
                f"first: {failed[0]}: {first}; nothing was switched"
            )
        # One transaction: the hosts' results, the abort check and the next status.
        with self.store.begin() as conn:
            history.set_hosts(conn, self.id, updates)
            if self._abort_requested(conn):
                new, data = machine.ABORTED, None
                values = {"error": "aborted during pre-stage; nothing was switched"}
            elif new == machine.SWITCHING and failed:
                history.set_hosts(conn, self.id, {h: {"status": machine.H_SKIPPED} for h in failed})
            self._status_in(conn, new, data, **values)
        self._flush()
        self._progress(new, **(data or {}))
        return new == machine.SWITCHING

    def _record_switch(self, rows, rets):
        """Host updates from switch/install reports; returns (updates, failed hostnames)."""
        updates, failed = {}, []
        for row in rows:
            ret = rets.get(row["hostname"])
            if ret is None:
                updates[row["hostname"]] = {
                    "status": machine.H_UNREACHABLE,
                    "error": "no answer from the minion",
                }
                failed.append(row["hostname"])
            elif ret.get("result"):
                updates[row["hostname"]] = {
                    "status": machine.H_SWITCHED,
                    "steps": ret.get("steps"),
                    "error": None,
                }
            else:
                updates[row["hostname"]] = {
                    "status": machine.H_FAILED,
                    "steps": ret.get("steps"),
                    "error": ret.get("comment"),
                }
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
                    conn.execute(
                        history.runs.update().where(history.runs.c.id == self.id).values(slot=live["active"])
                    )
                self.run["slot"] = live["active"]
        if self.run["next_batch"] >= len(plan):
            # Every batch is done (a deploy resumed after its last batch).
            with self.store.begin() as conn:
                new, data = self._after_batch(
                    conn, len(plan) - 1, True, False, history.count_hosts(conn, self.id, _BAD)
                )
            self._flush()
            self._progress(new, **data)
            return
        for number in range(self.run["next_batch"], len(plan)):
            batch = plan[number]
            with self.store.connect() as conn:
                aborted = self._abort_requested(conn)
                rows = [] if aborted else history.host_rows(conn, self.id, [machine.H_STAGED], number)
            if aborted:
                self._status(machine.ROLLING_BACK, {"reason": "abort requested"}, error="aborted by request")
                return
            names = [r["hostname"] for r in rows]
            self._progress("batch", batch=number, kind=batch["kind"], hosts=names)
            gather = self._begin_call("switch", rows, [self.app, self.version], self._slot_kwargs())
            # Recorded while the minions switch.
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
            self._flush()
            rets = gather()
            updates, failed = self._record_switch(rows, rets)
            last = number + 1 == len(plan)
            pause = batch["kind"] == "canary" and self.opts["pause"] and not last
            # One transaction: the hosts' results, the batch, the failure count and the next status.
            with self.store.begin() as conn:
                history.set_hosts(conn, self.id, updates)
                history.set_batch(conn, self.id, number, "failed" if failed else "done", failed=len(failed))
                total_failed = history.count_hosts(conn, self.id, _BAD)
                if failed and batch["kind"] == "canary":
                    first = updates[failed[0]]["error"]
                    new, data = machine.ROLLING_BACK, {"reason": "canary failed", "hosts": failed}
                    self._status_in(conn, new, data, error=f"canary failed on {', '.join(failed)}: {first}")
                elif total_failed > self.opts["max_failures"]:
                    first = updates[failed[0]]["error"] if failed else "earlier failures"
                    new, data = machine.ROLLING_BACK, {"reason": "too many failures", "hosts": failed}
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
            self._flush()
            self._progress("batch_done", batch=number, failed=failed)
            if new is None:
                # Tolerated failures: put those hosts back on their previous release now.
                self._rollback_hosts(self._hosts([machine.H_FAILED, machine.H_UNREACHABLE], batch=number))
                with self.store.begin() as conn:
                    total_failed = history.count_hosts(conn, self.id, _BAD)
                    new, data = self._after_batch(conn, number, last, pause, total_failed)
                self._flush()
            if new != machine.SWITCHING:
                if new == machine.PAUSED:
                    self._progress("paused", batch=number, hint=f"salt-run deploy.resume {self.id}")
                else:
                    self._progress(new, **(data or {}))
                return

    def _after_batch(self, conn, number, last, pause, total_failed):
        """The status after a batch that did not stop the deploy, set in ``conn``; returns (status, event data)."""
        if last:
            if self.run["slot"]:
                # The balancers keep sending traffic to the same slot, which now holds this release.
                slots.set_versions(conn, self.app, self.run["env"], {self.run["slot"]: self.version}, self.id)
            data = {"hosts": self.run["plan"]["total"] - total_failed}
            self._status_in(conn, machine.SUCCEEDED, data)
            return machine.SUCCEEDED, data
        new = machine.PAUSED if pause else machine.SWITCHING
        data = {"batch": number, "next_batch": number + 1}
        self._status_in(conn, new, data, next_batch=number + 1, **({"owner": None} if pause else {}))
        return new, data

    def _blue_green(self):
        env = self.run["env"]
        plan = self.run["plan"]
        flip_only = bool(plan.get("flip_only"))
        if self.run["next_batch"] == 0:
            with self.store.connect() as conn:
                before = history.get_slots(conn, self.app, env)
            active = before["active"] if before else None
            idle = plan["slot"] if flip_only else _OTHER_SLOT.get(active, "blue")
            rows = self._hosts([machine.H_STAGED])
            with self.store.begin() as conn:
                self.run = history.set_status(
                    conn,
                    self.id,
                    machine.SWITCHING,
                    event_data={"slot": idle, "active": active},
                    slot=idle,
                    plan=dict(plan, previous_slot=active),
                )
                history.set_batch(conn, self.id, 0, "running")
            self._flush()
            if flip_only:
                # Checked healthy at the staging step: the slot only has to take the traffic.
                updates = {r["hostname"]: {"status": machine.H_SWITCHED, "error": None} for r in rows}
                failed = []
            else:
                self._progress("install_slot", slot=idle, hosts=len(rows))
                rets = self._call("install_slot", rows, [self.app, self.version, idle])
                updates, failed = self._record_switch(rows, rets)
            with self.store.begin() as conn:
                history.set_hosts(conn, self.id, updates)
                history.set_batch(conn, self.id, 0, "failed" if failed else "done", failed=len(failed))
            if failed or self._abort_requested():
                first = updates[failed[0]]["error"] if failed else "abort requested"
                # The live slot was never touched: nothing to roll back.
                self._status(
                    machine.ROLLING_BACK,
                    {"reason": "idle slot failed" if failed else "abort requested", "hosts": failed},
                    error=(
                        f"slot {idle} failed on {len(failed)} host(s): {', '.join(failed)}: {first}; "
                        f"traffic stays on slot {active or '(none)'}"
                        if failed
                        else "aborted by request"
                    ),
                )
                return
            with self.store.begin() as conn:
                self.run = history.set_status(conn, self.id, machine.SWITCHING, next_batch=1)
        target = self.run["slot"]
        if self.run["next_batch"] == 1:
            # The flip: the live slot (what the balancers read), then the balancers
            # themselves; the deploy waits for their state runs.
            outcome = self._flip(target, {target: self.version}, "deploy")
            if not outcome["ok"]:
                previous = self.run["plan"].get("previous_slot")
                self._status(
                    machine.ROLLING_BACK,
                    {"reason": "balancer update failed", "balancers": outcome},
                    error=(
                        f"the balancers did not take slot {target}: {outcome['error']}; "
                        f"flipping back to {previous or 'no slot'}"
                    ),
                )
                return
            with self.store.begin() as conn:
                self.run = history.set_status(conn, self.id, machine.SWITCHING, next_batch=2)
        # Each host's `current` follows (no restart: both slots keep running).
        rows = self._hosts([machine.H_SWITCHED])
        rets = self._call("set_active", rows, [self.app, target])
        lagging = sorted(h for h in (r["hostname"] for r in rows) if not (rets.get(h) or {}).get("result"))
        if lagging:
            with self.store.begin() as conn:
                history.set_hosts(
                    conn,
                    self.id,
                    {
                        h: {
                            "error": f"balancers flipped, but `current` on the host still points at the old slot: "
                            f"{(rets.get(h) or {}).get('comment') or 'no answer'}"
                        }
                        for h in lagging
                    },
                )
        outcome = self.run["plan"].get("flip") or {}
        self._status(
            machine.SUCCEEDED,
            {"slot": target, "hosts": len(rows), "lagging": lagging, "balancers": outcome.get("applied", [])},
        )

    def _flip(self, target, versions, reason):
        """Make ``target`` (a slot, or ``None``) live and update the balancers; returns the outcome."""
        env = self.run["env"]
        with self.store.begin() as conn:
            before = history.get_slots(conn, self.app, env)
            version = slots.record(
                conn, self.app, env, target, versions, self.id, self.run["actor"], reason=reason
            )
            history.event(
                conn,
                self.id,
                "flipped",
                {
                    "app": self.app,
                    "env": env,
                    "slot": target,
                    "version": self.version,
                    "previous_slot": before["active"] if before else None,
                    "cmdb_version": version,
                    "rollback": reason == "rollback",
                },
            )
        self._flush()
        self._progress("flipped", slot=target, cmdb_version=version)
        outcome = self._update_balancers(version)
        with self.store.begin() as conn:
            run = history.get_run(conn, self.id)
            key = "flip_back" if reason == "rollback" else "flip"
            plan = dict(run["plan"], **{key: outcome})
            conn.execute(history.runs.update().where(history.runs.c.id == self.id).values(plan=plan))
            history.event(conn, self.id, "balancers", dict(outcome, app=self.app, env=env, slot=target))
        self.run["plan"] = plan
        self._flush()
        self._progress("balancers", ok=outcome["ok"], applied=outcome["applied"], failed=outcome["failed"])
        return outcome

    def _update_balancers(self, cmdb_version):
        if self.balancers is None:
            return slots.balancer_outcome(None)
        try:
            result = self.balancers(cmdb_version)
        except Exception as err:  # noqa: BLE001 - any failure of the update fails the flip
            log.warning("deploy %s: balancer update failed: %s", self.id, err)
            result = {"result": False, "error": f"{type(err).__name__}: {err}"}
        return slots.balancer_outcome(result)

    def _rollback_hosts(self, rows):
        """Put ``rows`` back on their previous release; returns the hostnames that failed."""
        by_version = {}
        no_previous = []
        for row in rows:
            if row["previous_version"]:
                by_version.setdefault(row["previous_version"], []).append(row)
            else:
                no_previous.append(row["hostname"])
        updates = {h: {"status": machine.H_NO_PREVIOUS} for h in no_previous}
        failed = []
        for version, group in sorted(by_version.items()):
            self._progress("rolling_back", to=version, hosts=[r["hostname"] for r in group])
            rets = self._call("rollback", group, [self.app, version], self._slot_kwargs())
            for row in group:
                ret = rets.get(row["hostname"])
                if ret is not None and ret.get("result"):
                    updates[row["hostname"]] = {"status": machine.H_ROLLED_BACK}
                else:
                    reason = "no answer from the minion" if ret is None else ret.get("comment")
                    updates[row["hostname"]] = {
                        "status": machine.H_ROLLBACK_FAILED,
                        "error": f"rollback to {version} failed: {reason}",
                    }
                    failed.append(row["hostname"])
        with self.store.begin() as conn:
            history.set_hosts(conn, self.id, updates)
        return failed

    def _rollback(self):
        if self.run["strategy"] == "blue_green":
            failed = self._rollback_blue_green()
        else:
            failed = self._rollback_hosts(self._hosts(machine.NEEDS_ROLLBACK))
        if failed:
            self._status(
                machine.ROLLBACK_FAILED,
                {"hosts": failed},
                error=(self.run["error"] or "") + f"; rollback failed on {', '.join(failed)}",
            )
        elif self.run["abort_requested"] or (self.run["error"] or "").startswith("aborted"):
            self._status(machine.ABORTED, error=self.run["error"] or "aborted by request")
        else:
            self._status(machine.ROLLED_BACK, error=self.run["error"])

    def _rollback_blue_green(self):
        env = self.run["env"]
        with self.store.connect() as conn:
            row = history.get_slots(conn, self.app, env)
        rows = self._hosts(machine.NEEDS_ROLLBACK)
        if not row or row["deploy_id"] != self.id or row["active"] != self.run["slot"]:
            # The flip never happened: the live slot kept the traffic.
            with self.store.begin() as conn:
                history.set_hosts(
                    conn, self.id, {r["hostname"]: {"status": machine.H_ROLLED_BACK} for r in rows}
                )
            return []
        previous = self.run["plan"].get("previous_slot")
        outcome = self._flip(previous, {}, "rollback")
        if not outcome["ok"]:
            with self.store.begin() as conn:
                history.set_hosts(
                    conn,
                    self.id,
                    {
                        r["hostname"]: {
                            "status": machine.H_ROLLBACK_FAILED,
                            "error": f"the balancers did not take slot {previous or '(none)'} back: {outcome['error']}",
                        }
                        for r in rows
                    },
                )
            return sorted(outcome["failed"]) or ["the balancers"]
        failed = []
        if previous and self.run["next_batch"] >= 2:
            # The hosts' `current` had followed the flip: point it back too.
            rets = self._call("set_active", rows, [self.app, previous])
            failed = [r["hostname"] for r in rows if not (rets.get(r["hostname"]) or {}).get("result")]
        with self.store.begin() as conn:
            history.set_hosts(
                conn,
                self.id,
                {
                    r["hostname"]: (
                        {"status": machine.H_ROLLBACK_FAILED, "error": "could not set the live slot back"}
                        if r["hostname"] in failed
                        else {"status": machine.H_ROLLED_BACK}
                    )
                    for r in rows
                },
            )
        return failed


def resume(store, dconf, deploy_id, executor, fire=None, progress=None, balancers=None):
    """Continue a paused deploy, or one whose runner died (after ``lock_stale_after``)."""
    with store.begin() as conn:
        run = history.get_run(conn, deploy_id)
        if run["status"] in machine.TERMINAL:
            raise Conflict(f"deploy {deploy_id} is {run['status']}; there is nothing to resume")
        holder = lock.holder(conn, run["app"], run["env"])
        if holder is None or holder["id"] != run["id"]:
            raise Conflict(f"deploy {deploy_id} no longer holds the lock of {run['app']}/{run['env']}")
        lock.claim(conn, run["id"], takeover_stale_after=dconf["lock_stale_after"])
        if run["status"] == machine.PAUSED:
            history.set_status(conn, run["id"], machine.SWITCHING, event_data={"resumed": True})
        else:
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
    with store.begin() as conn:
        run = history.get_run(conn, deploy_id)
        if run["status"] in machine.TERMINAL:
            raise Conflict(f"deploy {deploy_id} is already {run['status']}")
        driven = run["status"] != machine.PAUSED and not lock.is_stale(run, dconf["lock_stale_after"])
        if driven and run["owner"] != lock.me():
            conn.execute(
                history.runs.update().where(history.runs.c.id == run["id"]).values(abort_requested=True)
            )
            history.event(conn, run["id"], "abort_requested", {"app": run["app"], "env": run["env"]})
            requested = True
        else:
            lock.claim(conn, run["id"], takeover_stale_after=dconf["lock_stale_after"])
            conn.execute(
                history.runs.update().where(history.runs.c.id == run["id"]).values(abort_requested=True)
            )
            if run["status"] in (machine.PENDING, machine.STAGING):
                history.set_status(conn, run["id"], machine.ABORTED, error="aborted before any host switched")
                lock.release(conn, run["app"], run["env"], run["id"])
            else:
                history.set_status(
                    conn,
                    run["id"],
                    machine.ROLLING_BACK,
                    event_data={"reason": "abort"},
                    error="aborted by request",
                )
            requested = False
    driver = Driver(store, dconf, deploy_id, executor, fire, progress, balancers)
    if requested:
        driver._flush()
        out = driver.describe()
        out["comment"] = f"deploy {deploy_id} is driven by {run['owner']}; it was asked to stop and roll back"
        return out
    if driver.run["status"] == machine.ROLLING_BACK:
        return driver.execute()
    driver._flush()
    return driver.describe()


def status(store, dconf, deploy_id=None, app=None, env=None):
    """One deploy in full, or the deploys that are not finished (with ``interrupted`` marking dead runners)."""
    with store.connect() as conn:
        if deploy_id is not None:
            out = history.describe(conn, deploy_id)
            run = history.get_run(conn, deploy_id)
            out["runner_alive"] = lock.owner_alive(
                run["owner"], run["heartbeat_at"], dconf["lock_stale_after"]
            )
            out["stale"] = lock.is_stale(run, dconf["lock_stale_after"])
            return out
        active = history.list_runs(conn, app=app, env=env, statuses=sorted(machine.ACTIVE), limit=100)
        for item in active:
            run = history.get_run(conn, item["id"])
            item["stale"] = lock.is_stale(run, dconf["lock_stale_after"])
            item["owner"] = run["owner"]
        return active
