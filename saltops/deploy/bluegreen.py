"""Blue/green: install into the idle slot, flip the balancers, flip back on failure.

A mixin of :class:`saltops.deploy.driver.Driver`: it uses the driver's
plumbing (``_hosts``, ``_call``, ``_status``, ``_progress``...) and adds the
blue/green phases.  A flip is a CMDB change (:mod:`saltops.deploy.slots`)
followed by the balancers' update (``balancers(cmdb_version)``).
"""

import logging

from saltops.cmdb.balancers import BalancerUpdate
from saltops.deploy import history, slots, status_machine

log = logging.getLogger(__name__)

_OTHER_SLOT = slots.OTHER


class BlueGreen:
    """The blue/green phases of a deploy (mixed into the driver)."""

    def blue_green(self):
        env = self.run["env"]
        plan = self.run["plan"]
        flip_only = bool(plan.get("flip_only"))
        if self.run["next_batch"] == 0:
            with self.store.connect() as conn:
                before = history.get_slots(conn, self.app, env)
            active = before["active"] if before else None
            idle = plan["slot"] if flip_only else _OTHER_SLOT.get(active, "blue")
            rows = self.host_rows([status_machine.H_STAGED])
            with self.store.begin() as conn:
                self.run = history.set_status(
                    conn,
                    self.id,
                    status_machine.SWITCHING,
                    event_data={"slot": idle, "active": active},
                    slot=idle,
                    plan=dict(plan, previous_slot=active),
                )
                history.set_batch(conn, self.id, 0, "running")
            self.flush_events()
            if flip_only:
                # Checked healthy at the staging step: the slot only has to take the traffic.
                updates = {r["hostname"]: {"status": status_machine.H_SWITCHED, "error": None} for r in rows}
                failed = []
            else:
                self.report("install_slot", slot=idle, hosts=len(rows))
                rets = self.call("install_slot", rows, [self.app, self.version, idle])
                updates, failed = self.switch_updates(rows, rets)
            with self.store.begin() as conn:
                history.set_hosts(conn, self.id, updates)
                history.set_batch(conn, self.id, 0, "failed" if failed else "done", failed=len(failed))
            if failed or self.abort_requested():
                first = updates[failed[0]]["error"] if failed else "abort requested"
                # The live slot was never touched: nothing to roll back.
                self.move_to(
                    status_machine.ROLLING_BACK,
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
                self.run = history.set_status(conn, self.id, status_machine.SWITCHING, next_batch=1)
        target = self.run["slot"]
        if self.run["next_batch"] == 1:
            # The flip: the live slot (what the balancers read), then the balancers
            # themselves; the deploy waits for their state runs.
            outcome = self._flip(target, {target: self.version}, "deploy")
            if not outcome["ok"]:
                previous = self.run["plan"].get("previous_slot")
                self.move_to(
                    status_machine.ROLLING_BACK,
                    {"reason": "balancer update failed", "balancers": outcome},
                    error=(
                        f"the balancers did not take slot {target}: {outcome['error']}; "
                        f"flipping back to {previous or 'no slot'}"
                    ),
                )
                return
            with self.store.begin() as conn:
                self.run = history.set_status(conn, self.id, status_machine.SWITCHING, next_batch=2)
        # Each host's `current` follows (no restart: both slots keep running).
        rows = self.host_rows([status_machine.H_SWITCHED])
        rets = self.call("set_active", rows, [self.app, target])
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
        self.move_to(
            status_machine.SUCCEEDED,
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
        self.flush_events()
        self.report("flipped", slot=target, cmdb_version=version)
        outcome = self._update_balancers(version)
        with self.store.begin() as conn:
            run = history.get_run(conn, self.id)
            key = "flip_back" if reason == "rollback" else "flip"
            plan = dict(run["plan"], **{key: outcome})
            history.set_plan(conn, self.id, plan)
            history.event(conn, self.id, "balancers", dict(outcome, app=self.app, env=env, slot=target))
        self.run["plan"] = plan
        self.flush_events()
        self.report("balancers", ok=outcome["ok"], applied=outcome["applied"], failed=outcome["failed"])
        return outcome

    def _update_balancers(self, cmdb_version):
        if self.balancers is None:
            return slots.balancer_outcome(None)
        try:
            update = self.balancers(cmdb_version)
        except Exception as err:  # noqa: BLE001 - any failure of the update fails the flip
            log.warning("deploy %s: balancer update failed: %s", self.id, err)
            update = BalancerUpdate(error=f"{type(err).__name__}: {err}")
        return slots.balancer_outcome(update)

    def rollback_blue_green(self):
        env = self.run["env"]
        with self.store.connect() as conn:
            row = history.get_slots(conn, self.app, env)
        rows = self.host_rows(status_machine.NEEDS_ROLLBACK)
        if not row or row["deploy_id"] != self.id or row["active"] != self.run["slot"]:
            # The flip never happened: the live slot kept the traffic.
            with self.store.begin() as conn:
                history.set_hosts(
                    conn, self.id, {r["hostname"]: {"status": status_machine.H_ROLLED_BACK} for r in rows}
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
                            "status": status_machine.H_ROLLBACK_FAILED,
                            "error": f"the balancers did not take slot {previous or '(none)'} back: {outcome['error']}",
                        }
                        for r in rows
                    },
                )
            return sorted(outcome["failed"]) or ["the balancers"]
        failed = []
        if previous and self.run["next_batch"] >= 2:
            # The hosts' `current` had followed the flip: point it back too.
            rets = self.call("set_active", rows, [self.app, previous])
            failed = [r["hostname"] for r in rows if not (rets.get(r["hostname"]) or {}).get("result")]
        with self.store.begin() as conn:
            history.set_hosts(
                conn,
                self.id,
                {
                    r["hostname"]: (
                        {
                            "status": status_machine.H_ROLLBACK_FAILED,
                            "error": "could not set the live slot back",
                        }
                        if r["hostname"] in failed
                        else {"status": status_machine.H_ROLLED_BACK}
                    )
                    for r in rows
                },
            )
        return failed
