"""The operations the ``confpush`` runner offers, over the store, the renderer and the driver.

:class:`ConfPush` holds what every call needs: the store, the settings
(:func:`saltops.confpush.config.load`), the CMDB's envs, the acting user,
a factory for the executor that talks to minions, and the progress and
announce callbacks.  Errors are :mod:`saltops.errors` types with a message
a user can act on; nothing changes when one is raised before a push starts.
"""

from saltops.confpush import bundle, changes, driver, lock, model
from saltops.confpush import store as cstore
from saltops.errors import Conflict, NotFound, ValidationError


class ConfPush:
    """One caller's view of config push (a runner call)."""

    def __init__(self, store, settings, envs, actor, executor=None, progress=None, announce=None):
        self.store, self.settings, self.envs, self.actor = store, settings, list(envs), actor
        # A callable returning the executor: calls that do not talk to minions build none.
        self._executor, self._built = executor, None
        self.progress, self.announce = progress, announce

    @property
    def executor(self):
        if self._built is None:
            self._built = self._executor()
        return self._built

    def _names(self, app, env):
        model.check_name("app", app)
        if env not in self.envs:
            raise ValidationError(f"env {env!r} is not one of the CMDB's envs ({', '.join(self.envs)})")

    def store_set(self, app, env, spec, action="confpush.set"):
        """Check and store ``spec`` as the next version of ``app``/``env``'s set."""
        self._names(app, env)
        spec = model.normalise(spec, self.settings)
        with self.store.begin() as conn:
            version, created = cstore.save_set(conn, self.actor, app, env, spec, action)
        return {"app": app, "env": env, "version": version, "created": created}

    def show(self, app, env, version=None):
        self._names(app, env)
        with self.store.connect() as conn:
            return cstore.get_set(conn, app, env, version)

    def versions(self, app, env):
        self._names(app, env)
        with self.store.connect() as conn:
            return cstore.versions(conn, app, env)

    def history(self, app, env, hostname=None, limit=20):
        self._names(app, env)
        with self.store.connect() as conn:
            pushes = cstore.history(conn, app, env, hostname, limit)
        for item in pushes:
            if item["status"] == cstore.RUNNING:
                alive = lock.alive(item, self.settings["lock_stale_after"])
                item["heartbeat_at"] = item["heartbeat_at"] and item["heartbeat_at"].isoformat() + "Z"
                item["runner_alive"] = alive
                if not alive:
                    item["hint"] = (
                        f"its runner is gone: confpush.resume app={app} env={env} continues it, "
                        f"confpush.abort app={app} env={env} ends it"
                    )
        return pushes

    def import_dir(self, app, env, directory):
        return self.store_set(app, env, bundle.read(directory, self.settings), "confpush.import")

    def export_dir(self, app, env, directory, version=None):
        stored = self.show(app, env, version)
        written = bundle.write(directory, app, env, stored["version"], stored["spec"])
        return {"app": app, "env": env, "version": stored["version"], "written": written}

    def diff(self, app, env, version=None, hostnames=None):
        self._names(app, env)
        return driver.diff(self.store, self.executor, self.settings, app, env, version, hostnames)

    def drift(self, app, env, hostnames=None):
        self._names(app, env)
        return driver.drift(self.store, self.executor, self.settings, app, env, hostnames)

    def _runner(self, recording_only=False):
        """The push driver; one that only records a push (for a background job) talks to no minion."""
        executor = None if recording_only else self.executor
        return driver.Push(self.store, executor, self.settings, self.actor, self.progress, self.announce)

    def push(
        self,
        app,
        env,
        version=None,
        hostnames=None,
        batch_size=None,
        kind="push",
        with_app=True,
        max_share=None,
        handoff=None,
    ):
        """Render everywhere, then push batch by batch; returns the push's result.

        With ``handoff`` (a :func:`saltops.confpush.lock.handoff_owner`) the
        push is only checked and recorded, owned by that runner job, which
        :meth:`resume` runs; returns the push as :meth:`status` shows it.
        """
        self._names(app, env)
        stored, records, rendered = driver.render_targets(self.store, app, env, version, hostnames, with_app)
        runner = self._runner(recording_only=handoff is not None)
        push_id = runner.start(
            app, env, stored, rendered, records, kind, batch_size, max_share, owner=handoff
        )
        if handoff is not None:
            return self.status(push_id)
        return runner.run()

    def rollback(self, app, env, to, hostnames=None, handoff=None):
        """Every target host back to the files pushed from set version ``to`` (byte-identical).

        ``handoff``: recorded only, for a runner job to drive (see :meth:`push`).
        """
        self._names(app, env)
        if isinstance(to, bool) or not isinstance(to, int) or to < 1:
            raise ValidationError(f"to must be a set version number, got {to!r}")
        with self.store.connect() as conn:
            records = driver.targets(conn, app, env, hostnames)
        stored, rendered, fresh = driver.rollback_contents(self.store, app, env, to, records)
        runner = self._runner(recording_only=handoff is not None)
        push_id = runner.start(app, env, stored, rendered, records, "rollback", owner=handoff)
        result = self.status(push_id) if handoff is not None else runner.run()
        result["rendered_anew"] = fresh
        return result

    def _stopped_push(self, app, env, push_id):
        """The id of the push to resume or abort: ``push_id``, or the one holding ``app``/``env``'s lock."""
        self._names(app, env)
        with self.store.connect() as conn:
            if push_id is None:
                push_id = lock.holder(conn, app, env)
                if push_id is None:
                    raise NotFound(f"no config push of {app}/{env} is unfinished")
                return push_id
            row = cstore.get_push(conn, push_id)
        if (row["app"], row["env"]) != (app, env):
            raise ValidationError(f"config push {push_id} is of {row['app']}/{row['env']}, not {app}/{env}")
        return push_id

    def resume(self, app, env, push_id=None, handoff=None):
        """Continue a push whose runner died (or was stopped) from where its record ends,
        or drive one recorded for this runner job (``handoff``)."""
        push_id = self._stopped_push(app, env, push_id)
        return driver.resume(self._runner(), push_id, handoff)

    def status(self, push_id=None, app=None, env=None):
        """One push as it stands (hosts, batch, whether its runner runs), or every unfinished one."""
        if push_id is None:
            if app is not None:
                model.check_name("app", app)
            with self.store.connect() as conn:
                ids = cstore.unfinished(conn, app, env)
            return [self.status(i) for i in ids]
        with self.store.connect() as conn:
            row = cstore.get_push(conn, push_id)
            hosts = cstore.host_statuses(conn, push_id)
        by_status = {}
        for state in hosts.values():
            by_status[state] = by_status.get(state, 0) + 1
        out = {
            "id": row["id"],
            "app": row["app"],
            "env": row["env"],
            "version": row["set_version"],
            "kind": row["kind"],
            "status": row["status"],
            "actor": row["actor"],
            "error": row["error"],
            "created_at": _iso(row["created_at"]),
            "finished_at": _iso(row["finished_at"]),
            "batch": row["batch"],
            "batches": len((row["plan"] or {}).get("batches") or []),
            "hosts": hosts,
            "hosts_by_status": by_status,
        }
        if row["status"] == cstore.RUNNING:
            alive = lock.alive(row, self.settings["lock_stale_after"])
            out.update(owner=row["owner"], heartbeat_at=_iso(row["heartbeat_at"]), runner_alive=alive)
            if not alive:
                out["hint"] = (
                    f"its runner is gone: confpush.resume app={row['app']} env={row['env']} id={row['id']} "
                    f"continues it, confpush.abort app={row['app']} env={row['env']} id={row['id']} ends it"
                )
        return out

    def abort(self, app, env, push_id=None):
        """End a push whose runner died: its running batch settled, no further host reached, lock released."""
        push_id = self._stopped_push(app, env, push_id)
        result = driver.abort(self._runner(), push_id)
        done = sorted(result["pushed"])
        if done:
            with self.store.connect() as conn:
                before = cstore.version_before(conn, push_id, done)
            result["comment"] = (
                f"{', '.join(done)} keep the files of set version {result['version']}"
                + (f"; confpush.rollback to={before} puts them back" if before else "")
            )
        return result

    def migrate(self, app, env, to_env=None, hostnames=None, confirm=False):
        """Copy ``app``/``env``'s set to ``to_env`` and push it there, or push it to new ``hostnames``.

        Without ``confirm`` nothing changes: the result is what would be stored
        and the per-host diff.  With it, the copy is stored and pushed.
        """
        self._names(app, env)
        if bool(to_env) == bool(hostnames):
            raise ValidationError(
                "migrate needs either to_env= (another env) or hosts= (new hosts), not both"
            )
        with self.store.connect() as conn:
            source = cstore.get_set(conn, app, env)
        if not to_env:
            if not confirm:
                preview = driver.diff(
                    self.store, self.executor, self.settings, app, env, None, hostnames, with_app=False
                )
                preview["confirm"] = "nothing was changed; run again with confirm=True to push"
                return preview
            return self.push(app, env, None, hostnames, kind="migrate", with_app=False)
        self._names(app, to_env)
        if to_env == env:
            raise ValidationError("to_env is the set's own env")
        spec = model.normalise(source["spec"], self.settings)
        with self.store.connect() as conn:
            try:
                current = cstore.get_set(conn, app, to_env)
            except NotFound:
                current = None
            records = driver.targets(conn, app, to_env)
        rendered = driver.render.render_all(spec, app, records)
        plan = {
            "from": {"env": env, "version": source["version"]},
            "to": {"env": to_env, "version": current["version"] if current else None},
            "set_changes": _set_changes(current["spec"] if current else None, spec),
        }
        if not confirm:
            plan["hosts"] = driver.check(self.executor, spec, rendered, self.settings["job_timeout"])
            plan["confirm"] = "nothing was changed; run again with confirm=True to store and push"
            return plan
        stored = self.store_set(app, to_env, spec, "confpush.migrate")
        plan["stored_version"] = stored["version"]
        plan["push"] = self.push(app, to_env, stored["version"], kind="migrate")
        return plan

    def on_cmdb_change(self, version):
        """Push each app's set to the hosts the CMDB change of ``version`` gave that app.

        Reads the change from the audit log; the caller (the reactor, whose
        acting user is ``Reactor``) passes only the version.  A busy app/env
        is reported in ``refused``, not retried.
        """
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValidationError(f"version must be a positive CMDB version, got {version!r}")
        with self.store.connect() as conn:
            gained = changes.new_app_hosts(conn, version)
            wanted = {k: v for k, v in gained.items() if cstore.latest_version(conn, *k) is not None}
        out = {"version": version, "pushes": [], "refused": []}
        if wanted and not cstore.claim_cmdb_change(self.store, version, f"{self.actor}@{lock.me()}"):
            # Another master (or an earlier delivery of the same event) already reacted.
            out["already_handled"] = True
            return out
        for (app, env), names in sorted(wanted.items()):
            try:
                result = self.push(app, env, None, names, kind="reactor")
                out["pushes"].append(
                    {k: result[k] for k in ("id", "app", "env", "version", "status", "error")}
                )
            except (Conflict, ValidationError, NotFound) as err:
                out["refused"].append({"app": app, "env": env, "hosts": names, "error": str(err)})
        return out


def _iso(value):
    return value and value.isoformat() + "Z"


def _set_changes(before, after):
    old = {f["path"]: f for f in (before or {}).get("files", [])}
    new = {f["path"]: f for f in after["files"]}
    old_values, new_values = (before or {}).get("values", {}), after["values"]
    return {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(p for p in set(old) & set(new) if old[p] != new[p]),
        "values_changed": sorted(
            k for k in set(old_values) | set(new_values) if old_values.get(k) != new_values.get(k)
        ),
    }
