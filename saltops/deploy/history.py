"""Deploy records: runs, host results, batches, blue/green slots, and their events.

Every status change writes its ``saltops/deploy/<id>/<phase>`` event to the
outbox in the same transaction; starting and finishing a deploy also writes
an audit row.
"""

import sqlalchemy as sa

from saltops.deploy import status_machine
from saltops.deploy.schema import batches, hosts, runs, slots
from saltops.errors import Conflict, NotFound
from saltops.store import audit, outbox

TAG = "saltops/deploy/{id}/{phase}"


def _iso(value):
    return value.isoformat() + "Z" if value is not None else None


def event(conn, deploy_id, phase, data):
    outbox.enqueue(conn, TAG.format(id=deploy_id, phase=phase), dict(data, id=deploy_id, phase=phase))


def create_run(conn, request, plan, actor, owner, host_records, kind="deploy", rollback_of=None):
    """Insert a deploy with its hosts and batches (status ``pending``); return its id."""
    now = audit.utcnow()
    result = conn.execute(
        runs.insert().values(
            app=request["app"],
            env=request["env"],
            version=request["version"],
            artifact=request["artifact"],
            sha256=request["sha256"].lower(),
            strategy=plan["strategy"],
            kind=kind,
            status=status_machine.PENDING,
            actor=actor,
            options=request["options"],
            plan=plan,
            next_batch=0,
            rollback_of=rollback_of,
            owner=owner,
            heartbeat_at=now,
            abort_requested=False,
            created_at=now,
        )
    )
    deploy_id = result.inserted_primary_key[0]
    batch_of = {name: b["number"] for b in plan["batches"] for name in b["hosts"]}
    rows = [
        {
            "deploy_id": deploy_id,
            "hostname": rec["hostname"],
            "batch": batch_of[rec["hostname"]],
            "status": status_machine.H_PENDING,
            "previous_version": None,
            "settings": rec["apps"][request["app"]] or {},
            "steps": None,
            "error": None,
            "updated_at": now,
        }
        for rec in host_records
    ]
    for start in range(0, len(rows), 1000):
        conn.execute(hosts.insert(), rows[start : start + 1000])
    conn.execute(
        batches.insert(),
        [
            {
                "deploy_id": deploy_id,
                "number": b["number"],
                "kind": b["kind"],
                "status": "pending",
                "size": len(b["hosts"]),
                "failed": 0,
            }
            for b in plan["batches"]
        ],
    )
    summary = {
        "app": request["app"],
        "env": request["env"],
        "version": request["version"],
        "strategy": plan["strategy"],
        "kind": kind,
        "hosts": len(rows),
        "batches": len(plan["batches"]),
    }
    audit.record(conn, actor, f"deploy.{kind}", "deploy", deploy_id, None, summary)
    event(conn, deploy_id, "created", dict(summary, actor=actor))
    return deploy_id


def get_run(conn, deploy_id):
    row = conn.execute(sa.select(runs).where(runs.c.id == int(deploy_id))).first()
    if row is None:
        raise NotFound(f"deploy {deploy_id} does not exist")
    return dict(row._mapping)


def set_status(conn, deploy_id, new, expected=None, event_data=None, **values):
    """Move a deploy to ``new`` (checked against the state machine), with its event."""
    run = get_run(conn, deploy_id)
    current = run["status"]
    if expected is not None and current != expected:
        raise Conflict(f"deploy {deploy_id} is {current}, not {expected}")
    if new != current or new == status_machine.SWITCHING:
        status_machine.check(current, new)
    values["status"] = new
    if new in status_machine.TERMINAL:
        values.setdefault("finished_at", audit.utcnow())
        values.setdefault("owner", None)
    result = conn.execute(
        runs.update().where(runs.c.id == run["id"], runs.c.status == current).values(**values)
    )
    if result.rowcount != 1:
        raise Conflict(f"deploy {deploy_id} changed status meanwhile")
    data = {"app": run["app"], "env": run["env"], "version": run["version"], "status": new}
    data.update(event_data or {})
    if values.get("error"):
        data["error"] = values["error"]
    event(conn, run["id"], new, data)
    if new in status_machine.TERMINAL:
        audit.record(
            conn,
            run["actor"],
            f"deploy.{new}",
            "deploy",
            run["id"],
            {"status": current},
            {"status": new, "version": run["version"], "error": values.get("error")},
        )
    return dict(run, **values)


def set_slot(conn, deploy_id, slot):
    """The blue/green slot a rolling or canary deploy goes into (the app's live one)."""
    conn.execute(runs.update().where(runs.c.id == deploy_id).values(slot=slot))


def set_plan(conn, deploy_id, plan):
    """Replace the stored plan (a flip's balancer outcome is kept in it)."""
    conn.execute(runs.update().where(runs.c.id == deploy_id).values(plan=plan))


def request_abort(conn, deploy_id):
    """Mark the deploy to be stopped and rolled back by whoever drives it."""
    conn.execute(runs.update().where(runs.c.id == deploy_id).values(abort_requested=True))


def touch(conn, deploy_id, owner):
    """Heartbeat of the process driving a deploy; False when it no longer owns it."""
    result = conn.execute(
        runs.update().where(runs.c.id == deploy_id, runs.c.owner == owner).values(heartbeat_at=audit.utcnow())
    )
    return result.rowcount == 1


def host_rows(conn, deploy_id, statuses=None, batch=None):
    query = sa.select(hosts).where(hosts.c.deploy_id == deploy_id).order_by(hosts.c.batch, hosts.c.hostname)
    if statuses is not None:
        query = query.where(hosts.c.status.in_(list(statuses)))
    if batch is not None:
        query = query.where(hosts.c.batch == batch)
    return [dict(r._mapping) for r in conn.execute(query)]


def count_hosts(conn, deploy_id, statuses):
    """How many hosts of the deploy are in one of ``statuses``."""
    query = sa.select(sa.func.count()).where(
        hosts.c.deploy_id == deploy_id, hosts.c.status.in_(list(statuses))
    )
    return conn.execute(query).scalar()


def set_hosts(conn, deploy_id, updates):
    """Apply ``{hostname: {"status": .., "steps": .., "error": .., ...}}`` (transitions checked).

    One read of the hosts' statuses and one executemany per set of columns
    (usually one per call), not a statement per host.
    """
    if not updates:
        return
    names = list(updates)
    current = {}
    for start in range(0, len(names), 5000):
        query = sa.select(hosts.c.hostname, hosts.c.status).where(
            hosts.c.deploy_id == deploy_id, hosts.c.hostname.in_(names[start : start + 5000])
        )
        current.update((r.hostname, r.status) for r in conn.execute(query))
    now = audit.utcnow()
    groups = {}
    for hostname, values in updates.items():
        if hostname not in current:
            raise NotFound(f"host {hostname} is not part of deploy {deploy_id}")
        if "status" in values and values["status"] != current[hostname]:
            status_machine.check_host(current[hostname], values["status"])
        params = {f"v_{column}": value for column, value in values.items()}
        groups.setdefault(tuple(sorted(values)), []).append(dict(params, b_hostname=hostname))
    for columns, params in groups.items():
        statement = (
            hosts.update()
            .where(hosts.c.deploy_id == deploy_id, hosts.c.hostname == sa.bindparam("b_hostname"))
            .values(updated_at=now, **{c: sa.bindparam(f"v_{c}", type_=hosts.c[c].type) for c in columns})
        )
        conn.execute(statement, params)


def set_batch(conn, deploy_id, number, status, failed=None):
    values = {"status": status}
    now = audit.utcnow()
    if status == "running":
        values["started_at"] = now
    else:
        values["finished_at"] = now
    if failed is not None:
        values["failed"] = failed
    conn.execute(
        batches.update().where(batches.c.deploy_id == deploy_id, batches.c.number == number).values(**values)
    )


def batch_rows(conn, deploy_id):
    query = sa.select(batches).where(batches.c.deploy_id == deploy_id).order_by(batches.c.number)
    return [dict(r._mapping) for r in conn.execute(query)]


def describe(conn, deploy_id, with_hosts=True):
    """A deploy as plain data: the run, counts per host status, batches and hosts."""
    run = get_run(conn, deploy_id)
    rows = host_rows(conn, run["id"])
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    out = {
        "id": run["id"],
        "app": run["app"],
        "env": run["env"],
        "version": run["version"],
        "artifact": run["artifact"],
        "sha256": run["sha256"],
        "strategy": run["strategy"],
        "kind": run["kind"],
        "status": run["status"],
        "actor": run["actor"],
        "slot": run["slot"],
        "rollback_of": run["rollback_of"],
        "error": run["error"],
        "options": run["options"],
        "owner": run["owner"],
        "abort_requested": bool(run["abort_requested"]),
        "created_at": _iso(run["created_at"]),
        "heartbeat_at": _iso(run["heartbeat_at"]),
        "finished_at": _iso(run["finished_at"]),
        "next_batch": run["next_batch"],
        "hosts_by_status": counts,
        "batches": [
            {
                "number": b["number"],
                "kind": b["kind"],
                "status": b["status"],
                "size": b["size"],
                "failed": b["failed"],
                "hosts": run["plan"]["batches"][b["number"]]["hosts"],
            }
            for b in batch_rows(conn, run["id"])
        ],
    }
    for key in ("flip", "flip_back"):
        if run["plan"].get(key) is not None:
            # What the balancers did when the live slot changed (blue/green).
            out[key] = run["plan"][key]
    if with_hosts:
        out["hosts"] = {
            r["hostname"]: {
                "status": r["status"],
                "batch": r["batch"],
                "previous_version": r["previous_version"],
                "error": r["error"],
                "steps": r["steps"],
            }
            for r in rows
        }
    return out


def list_runs(conn, app=None, env=None, statuses=None, limit=20):
    query = sa.select(runs).order_by(runs.c.id.desc()).limit(int(limit))
    if app:
        query = query.where(runs.c.app == app)
    if env:
        query = query.where(runs.c.env == env)
    if statuses:
        query = query.where(runs.c.status.in_(list(statuses)))
    out = []
    for row in conn.execute(query).mappings():
        out.append(
            {
                "id": row["id"],
                "app": row["app"],
                "env": row["env"],
                "version": row["version"],
                "strategy": row["strategy"],
                "kind": row["kind"],
                "status": row["status"],
                "actor": row["actor"],
                "error": row["error"],
                "created_at": _iso(row["created_at"]),
                "finished_at": _iso(row["finished_at"]),
            }
        )
    return out


def succeeded(conn, app, env, limit=100):
    """Successful deploys of ``app`` to ``env``, newest first (rows)."""
    query = (
        sa.select(runs)
        .where(runs.c.app == app, runs.c.env == env, runs.c.status == status_machine.SUCCEEDED)
        .order_by(runs.c.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def get_slots(conn, app, env):
    row = conn.execute(sa.select(slots).where(slots.c.app == app, slots.c.env == env)).first()
    return dict(row._mapping) if row else None


def set_slots(conn, app, env, active, versions, deploy_id):
    """Record which slot is live (``versions``: ``{"blue": .., "green": ..}`` to change)."""
    now = audit.utcnow()
    values = {"active": active, "deploy_id": deploy_id, "updated_at": now}
    for slot, version in versions.items():
        values[f"{slot}_version"] = version
    current = get_slots(conn, app, env)
    if current is None:
        conn.execute(slots.insert().values(app=app, env=env, **values))
    else:
        conn.execute(slots.update().where(slots.c.app == app, slots.c.env == env).values(**values))


def active_slots(conn, env=None):
    """``{env: {app: {"active": slot, "version": ..., "blue": .., "green": ..}}}`` for the balancers' pillar."""
    query = sa.select(slots)
    if env:
        query = query.where(slots.c.env == env)
    out = {}
    for row in conn.execute(query).mappings():
        out.setdefault(row["env"], {})[row["app"]] = {
            "active": row["active"],
            "version": row[f"{row['active']}_version"],
            "blue": row["blue_version"],
            "green": row["green_version"],
        }
    return out
