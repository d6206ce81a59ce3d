"""Deploy requests: their validation, the plan a deploy would follow, starting one, and rollbacks.

Nothing here talks to minions: :mod:`saltops.deploy.driver` runs what
:func:`start` recorded.
"""

from saltops.deploy import config as dconfig
from saltops.deploy import history, lock, rules, slots, status_machine
from saltops.deploy import plan as planner
from saltops.deploy import targets as cmdb_targets
from saltops.errors import NotFound, ValidationError

_OTHER_SLOT = slots.OTHER


def validate_request(app, env, version, artifact, sha256, envs=None):
    """Check a deploy request; raise :class:`ValidationError` listing every problem."""
    problems = []
    if not isinstance(app, str) or not rules.APP_NAME.match(app):
        problems.append(f"app {app!r} is not an app name (lowercase letters, digits, _ and -)")
    if not isinstance(env, str) or not env or (envs and env not in envs):
        problems.append(f"env {env!r} is not one of {', '.join(envs or [])}")
    version = None if version is None else str(version)
    if rules.version_problem(version):
        problems.append(rules.version_problem(version))
    if (
        not isinstance(artifact, str)
        or not rules.ARTIFACT.match(artifact)
        or len(artifact) > rules.MAX_ARTIFACT_URL
    ):
        problems.append(f"artifact {artifact!r} must be an http://, https:// or salt:// URL")
    if not isinstance(sha256, str) or not rules.SHA256.match(sha256):
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
    plan["locked_by"] = holder["id"] if holder and holder["status"] not in status_machine.TERMINAL else None
    plan["options"] = {k: opts[k] for k in dconfig.PER_DEPLOY}
    return plan


def start(
    store, dconf, request, actor, overrides=None, kind="deploy", rollback_of=None, plan_extra=None, owner=None
):
    """Plan, lock and record a new deploy (status ``pending``); return its id.

    ``owner``: who drives it (this process by default; a
    :func:`saltops.deploy.lock.handoff_owner` for a background job).
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
        deploy_id = history.create_run(conn, request, plan, actor, owner or lock.me(), records, kind, rollback_of)
        recovered = lock.acquire(conn, app, env, deploy_id, dconf["lock_stale_after"])
        if recovered:
            history.event(
                conn,
                recovered,
                status_machine.INTERRUPTED,
                {"app": app, "env": env, "superseded_by": deploy_id},
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


def start_rollback(store, dconf, envs, app, env, actor, to=None, instant=True, overrides=None, owner=None):
    """Record the rollback of ``app`` in ``env`` (see :func:`rollback_request`); returns ``(deploy id, options)``.

    ``owner``: as for :func:`start` (a background job's handoff owner).

    An instant rollback (the idle blue/green slot holds the release) is a
    ``blue_green`` flip that only takes ``return_timeout`` from ``overrides``;
    any other is a deploy of the earlier release, ``rolling`` unless
    ``overrides`` says otherwise.
    """
    target = rollback_request(store, app, env, to)
    request = validate_request(app, env, target["version"], target["artifact"], target["sha256"], envs)
    extra = target["instant"] if instant else None
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if extra:
        options = {"strategy": "blue_green", **{k: v for k, v in given.items() if k == "return_timeout"}}
    else:
        options = {"strategy": "rolling", **given}
    dconfig.options(dconf, options)
    deploy_id = start(
        store,
        dconf,
        request,
        actor,
        options,
        kind="rollback",
        rollback_of=target["from_deploy"],
        plan_extra=extra,
        owner=owner,
    )
    return deploy_id, options
