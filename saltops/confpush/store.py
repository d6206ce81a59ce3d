"""Reading and writing config sets, pushes and pushed files: the only writer of the confpush tables.

Every change is audited (``saltops.store.audit``) and announced through the
event outbox in the transaction that makes it.
"""

import hashlib
import json

import sqlalchemy as sa

from saltops.confpush.schema import cmdb_claims, host_files, pushes, sets
from saltops.errors import NotFound
from saltops.store import audit, outbox
from saltops.store.audit import utcnow

# Push statuses.
RUNNING, SUCCEEDED, FAILED, INTERRUPTED, ABORTED = "running", "succeeded", "failed", "interrupted", "aborted"
TERMINAL = (SUCCEEDED, FAILED, INTERRUPTED, ABORTED)
# Host file statuses besides pushed/unchanged/failed: what a push will write
# (recorded when it starts), and what it never got to.
PLANNED, NOT_REACHED = "planned", "not_reached"


def spec_sha(spec):
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode("utf-8")).hexdigest()


def _set_row(row, with_spec=True):
    out = {
        "app": row.app,
        "env": row.env,
        "version": row.version,
        "sha256": row.sha256,
        "actor": row.actor,
        "comment": row.comment,
        "created_at": row.created_at.isoformat() + "Z",
    }
    if with_spec:
        out["spec"] = row.spec
    return out


def latest_version(conn, app, env):
    return conn.execute(
        sa.select(sa.func.max(sets.c.version)).where(sets.c.app == app, sets.c.env == env)
    ).scalar()


def save_set(conn, actor, app, env, spec, action="confpush.set"):
    """Store ``spec`` (checked) as the next version; an identical spec stores nothing.

    Returns ``(version, created)``.
    """
    current = latest_version(conn, app, env)
    digest = spec_sha(spec)
    if current is not None:
        row = conn.execute(
            sa.select(sets.c.sha256).where(sets.c.app == app, sets.c.env == env, sets.c.version == current)
        ).first()
        if row.sha256 == digest:
            return current, False
    version = (current or 0) + 1
    conn.execute(
        sets.insert().values(
            app=app,
            env=env,
            version=version,
            spec=spec,
            sha256=digest,
            actor=actor,
            comment=spec.get("comment") or "",
            created_at=utcnow(),
        )
    )
    after = {"version": version, "sha256": digest, "files": [f["path"] for f in spec["files"]]}
    audit.record(conn, actor, action, "confpush_set", f"{app}/{env}", None, after)
    outbox.enqueue(conn, f"saltops/confpush/set/{app}/{env}", {"app": app, "env": env, "version": version})
    return version, True


def get_set(conn, app, env, version=None):
    """The stored set (``version`` default: the newest) or :class:`NotFound`."""
    if version is None:
        version = latest_version(conn, app, env)
        if version is None:
            raise NotFound(
                f"no config set for {app} in {env}; store one with confpush.set or confpush.import"
            )
    row = conn.execute(
        sa.select(sets).where(sets.c.app == app, sets.c.env == env, sets.c.version == int(version))
    ).first()
    if row is None:
        raise NotFound(f"{app}/{env} has no version {version} (newest: {latest_version(conn, app, env)})")
    return _set_row(row)


def versions(conn, app, env):
    rows = conn.execute(
        sa.select(sets).where(sets.c.app == app, sets.c.env == env).order_by(sets.c.version.desc())
    ).all()
    if not rows:
        raise NotFound(f"no config set for {app} in {env}")
    return [_set_row(r, with_spec=False) for r in rows]


def create_push(conn, actor, app, env, set_version, kind, plan, owner):
    now = utcnow()
    result = conn.execute(
        pushes.insert().values(
            app=app,
            env=env,
            set_version=set_version,
            kind=kind,
            status=RUNNING,
            actor=actor,
            plan=plan,
            owner=owner,
            heartbeat_at=now,
            created_at=now,
        )
    )
    push_id = result.inserted_primary_key[0]
    after = {"set_version": set_version, "kind": kind, "hosts": plan["total"]}
    audit.record(conn, actor, f"confpush.{kind}", "confpush_push", push_id, None, after)
    outbox.enqueue(
        conn, f"saltops/confpush/{push_id}/started", {"id": push_id, "app": app, "env": env, **after}
    )
    return push_id


def claim_cmdb_change(store, version, by):
    """Take the reaction to CMDB ``version``: ``True`` for exactly one caller.

    Its own committed transaction; of two masters (or a replayed event) the
    primary key lets one insert the row.
    """
    try:
        with store.begin() as conn:
            conn.execute(cmdb_claims.insert().values(version=int(version), claimed_at=utcnow(),
                                                     claimed_by=str(by)[:128]))
    except sa.exc.IntegrityError:
        return False
    return True


def heartbeat(conn, push_id):
    conn.execute(pushes.update().where(pushes.c.id == push_id).values(heartbeat_at=utcnow()))


def batch_done(conn, push_id, app, env, number, hosts, failed, restored):
    """Announce a finished batch (``saltops/confpush/<id>/batch``) and beat the push's heartbeat."""
    heartbeat(conn, push_id)
    outbox.enqueue(
        conn,
        f"saltops/confpush/{push_id}/batch",
        {
            "id": push_id,
            "app": app,
            "env": env,
            "batch": number,
            "hosts": sorted(hosts),
            "failed": sorted(failed),
            "restored": sorted(restored),
        },
    )


def plan_files(conn, push_id, rendered_by_host):
    """Record every file the push will write on every host (``planned``), before any host is touched.

    A push resumed by another process writes exactly these bytes.
    """
    now = utcnow()
    rows = [
        {
            "push_id": push_id,
            "hostname": host,
            "path": f["path"],
            "status": PLANNED,
            "sha256": f["sha256"],
            "content": f["text"],
            "secrets": f["secrets"],
            "error": None,
            "updated_at": now,
        }
        for host, files in sorted(rendered_by_host.items())
        for f in files
    ]
    if rows:
        conn.execute(host_files.insert(), rows)


def planned_files(conn, push_id):
    """``{hostname: [file]}``: every file of the push (any status), as :func:`plan_files` got them."""
    out = {}
    query = sa.select(host_files).where(host_files.c.push_id == push_id)
    for row in conn.execute(query.order_by(host_files.c.hostname, host_files.c.path)):
        out.setdefault(row.hostname, []).append(
            {
                "path": row.path,
                "text": row.content,
                "sha256": row.sha256,
                "secrets": row.secrets,
                "status": row.status,
                "error": row.error,
            }
        )
    return out


def record_files(conn, push_id, hostname, files, status, error=None):
    """Record what became of a host's planned files: ``pushed``, ``unchanged``, ``failed``..."""
    paths = [f["path"] for f in files]
    if not paths:
        return
    conn.execute(
        host_files.update()
        .where(
            host_files.c.push_id == push_id,
            host_files.c.hostname == hostname,
            host_files.c.path.in_(paths),
        )
        .values(status=status, error=(error or None) and str(error)[:4000], updated_at=utcnow())
    )


def close_planned(conn, push_id, status=NOT_REACHED, error=None):
    """Files still ``planned`` when a push ends: it never got to them."""
    conn.execute(
        host_files.update()
        .where(host_files.c.push_id == push_id, host_files.c.status == PLANNED)
        .values(status=status, error=error, updated_at=utcnow())
    )


def batch_published(conn, push_id, number, jobs):
    """Note the batch just published and its Salt job ids (``{hostname: jid}``), and beat the heartbeat."""
    conn.execute(
        pushes.update()
        .where(pushes.c.id == push_id)
        .values(batch=number, jobs=dict(jobs), heartbeat_at=utcnow())
    )


def stopped(conn, push_id, error):
    """The runner of a push is being stopped: no owner any more (so resume/abort may claim it), the reason."""
    conn.execute(pushes.update().where(pushes.c.id == push_id).values(owner=None, error=error))


def claim(conn, actor, action, push, owner):
    """Make ``owner`` the driver of ``push`` (its row) whose runner is gone, audited as ``action``.

    False if someone claimed it meanwhile.
    """
    before = push["owner"]
    owned = pushes.c.owner.is_(None) if before is None else pushes.c.owner == before
    result = conn.execute(
        pushes.update()
        .where(pushes.c.id == push["id"], pushes.c.status == RUNNING, owned)
        .values(owner=owner, heartbeat_at=utcnow())
    )
    if result.rowcount != 1:
        return False
    after = {"owner": owner, "batch": push["batch"]}
    audit.record(conn, actor, action, "confpush_push", push["id"], {"owner": before}, after)
    return True


def interrupt(conn, push_id, error):
    """A push whose lock was taken over by another: ``interrupted``; its unrecorded files too."""
    row = conn.execute(sa.select(pushes).where(pushes.c.id == push_id)).first()
    conn.execute(
        pushes.update()
        .where(pushes.c.id == push_id)
        .values(status=INTERRUPTED, owner=None, finished_at=utcnow(), error=error)
    )
    close_planned(conn, push_id, INTERRUPTED, "the push's runner stopped before recording this file")
    outbox.enqueue(
        conn,
        f"saltops/confpush/{push_id}/{INTERRUPTED}",
        {"id": push_id, "app": row.app, "env": row.env, "set_version": row.set_version, "error": error},
    )


def finish_push(conn, actor, push_id, status, error=None, summary=None):
    row = conn.execute(sa.select(pushes).where(pushes.c.id == push_id)).first()
    conn.execute(
        pushes.update()
        .where(pushes.c.id == push_id)
        .values(status=status, error=error, owner=None, finished_at=utcnow())
    )
    close_planned(conn, push_id)
    after = {"status": status, "error": error, **(summary or {})}
    audit.record(conn, actor, f"confpush.{row.kind}.{status}", "confpush_push", push_id, None, after)
    outbox.enqueue(
        conn,
        f"saltops/confpush/{push_id}/{status}",
        {"id": push_id, "app": row.app, "env": row.env, "set_version": row.set_version, **(summary or {})},
    )


def get_push(conn, push_id):
    row = conn.execute(sa.select(pushes).where(pushes.c.id == int(push_id))).first()
    if row is None:
        raise NotFound(f"config push {push_id} does not exist")
    return dict(row._mapping)


def host_statuses(conn, push_id):
    """``{hostname: status}`` of a push's hosts: ``failed`` if any file failed, else ``pushed`` if any was
    written, else the status their files share (``unchanged``, ``planned``, ``not_reached``...)."""
    found = {}
    query = sa.select(host_files.c.hostname, host_files.c.status).where(host_files.c.push_id == int(push_id))
    for row in conn.execute(query):
        found.setdefault(row.hostname, set()).add(row.status)
    out = {}
    for host, statuses in sorted(found.items()):
        for status in (FAILED, "pushed", PLANNED):
            if status in statuses:
                out[host] = status
                break
        else:
            out[host] = min(statuses)
    return out


def unfinished(conn, app=None, env=None):
    """The ids of the pushes still ``running`` (of ``app``/``env`` when given), oldest first."""
    query = sa.select(pushes.c.id).where(pushes.c.status == RUNNING).order_by(pushes.c.id)
    if app is not None:
        query = query.where(pushes.c.app == app)
    if env is not None:
        query = query.where(pushes.c.env == env)
    return [row.id for row in conn.execute(query)]


def last_pushed(conn, app, env, hostnames, set_version=None):
    """``{hostname: {path: file}}``: the newest text pushed to each host for ``app``/``env``.

    With ``set_version``, the newest text pushed from that set version.  Only
    files a push wrote or found already in place count, not failed attempts.
    """
    query = (
        sa.select(host_files, pushes.c.set_version)
        .join(pushes, pushes.c.id == host_files.c.push_id)
        .where(
            pushes.c.app == app,
            pushes.c.env == env,
            host_files.c.status.in_(("pushed", "unchanged")),
            host_files.c.hostname.in_(list(hostnames)),
        )
        .order_by(host_files.c.push_id)
    )
    if set_version is not None:
        query = query.where(pushes.c.set_version == int(set_version))
    out = {}
    for row in conn.execute(query):
        out.setdefault(row.hostname, {})[row.path] = {
            "path": row.path,
            "text": row.content,
            "sha256": row.sha256,
            "secrets": row.secrets,
            "push_id": row.push_id,
            "set_version": row.set_version,
        }
    return out


def version_before(conn, push_id, hostnames):
    """The set version the newest earlier push of the same app/env wrote to ``hostnames`` (or ``None``)."""
    row = conn.execute(sa.select(pushes.c.app, pushes.c.env).where(pushes.c.id == push_id)).first()
    return conn.execute(
        sa.select(pushes.c.set_version)
        .join(host_files, host_files.c.push_id == pushes.c.id)
        .where(
            pushes.c.app == row.app,
            pushes.c.env == row.env,
            pushes.c.id < push_id,
            host_files.c.hostname.in_(list(hostnames)),
            host_files.c.status.in_(("pushed", "unchanged")),
        )
        .order_by(pushes.c.id.desc())
        .limit(1)
    ).scalar()


def history(conn, app, env, hostname=None, limit=20):
    """Pushes of ``app``/``env``, newest first, each with its hosts' files (sha256 and status)."""
    query = (
        sa.select(pushes).where(pushes.c.app == app, pushes.c.env == env).order_by(pushes.c.id.desc())
    ).limit(int(limit))
    out = []
    for row in conn.execute(query):
        files_q = sa.select(
            host_files.c.hostname,
            host_files.c.path,
            host_files.c.status,
            host_files.c.sha256,
            host_files.c.error,
        ).where(host_files.c.push_id == row.id)
        if hostname:
            files_q = files_q.where(host_files.c.hostname == hostname)
        hosts = {}
        for f in conn.execute(files_q.order_by(host_files.c.hostname, host_files.c.path)):
            hosts.setdefault(f.hostname, []).append(
                {
                    "path": f.path,
                    "status": f.status,
                    "sha256": f.sha256,
                    **({"error": f.error} if f.error else {}),
                }
            )
        if hostname and not hosts:
            continue
        out.append(
            {
                "id": row.id,
                "set_version": row.set_version,
                "kind": row.kind,
                "status": row.status,
                "actor": row.actor,
                "error": row.error,
                "created_at": row.created_at.isoformat() + "Z",
                "finished_at": row.finished_at and row.finished_at.isoformat() + "Z",
                "hosts": hosts,
                **({"owner": row.owner, "heartbeat_at": row.heartbeat_at} if row.status == RUNNING else {}),
            }
        )
    return out
