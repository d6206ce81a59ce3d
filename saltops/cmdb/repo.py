"""Reading and writing CMDB hosts.

Every write goes through :func:`write`: one transaction that validates,
changes the rows, bumps the CMDB change counter once, records an audit row per
host (before -> after) and queues one ``saltops/cmdb/changed`` event.  A write
either commits whole or changes nothing.
"""

import sqlalchemy as sa

from saltops.cmdb import refreshes
from saltops.cmdb import version as cmdb_version
from saltops.cmdb.model import FIELDS, merge_update, validate_host
from saltops.cmdb.schema import host_apps, host_lines, host_roles, hosts, tombstones
from saltops.errors import NotFound, ValidationError
from saltops.store import audit, outbox

CHANGED_TAG = "saltops/cmdb/changed"
# Above this many hosts the event says "all" instead of listing names.
EVENT_HOSTNAME_LIMIT = 1000
# Bound parameters per IN (...) clause: SQLite allows 32766 variables.
_CHUNK = 5000

FILTERS = ("role", "line", "idc", "env", "status", "platform", "app", "machine_type", "owner")


def _chunks(items, size=_CHUNK):
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _host_query(filters):
    query = sa.select(hosts)
    unknown = set(filters) - set(FILTERS)
    if unknown:
        raise ValidationError(
            f"unknown filter(s): {', '.join(sorted(unknown))} (known: {', '.join(FILTERS)})"
        )
    for key, value in filters.items():
        if value in (None, ""):
            continue
        values = value if isinstance(value, (list, tuple, set)) else [value]
        if key == "role":
            query = query.where(
                hosts.c.id.in_(sa.select(host_roles.c.host_id).where(host_roles.c.role.in_(values)))
            )
        elif key == "line":
            query = query.where(
                hosts.c.id.in_(sa.select(host_lines.c.host_id).where(host_lines.c.line.in_(values)))
            )
        elif key == "app":
            query = query.where(
                hosts.c.id.in_(sa.select(host_apps.c.host_id).where(host_apps.c.app.in_(values)))
            )
        else:
            query = query.where(hosts.c[key].in_(values))
    return query


def _attach(conn, rows, all_rows=False):
    """Turn host rows into full records (roles, lines, apps attached)."""
    by_id = {}
    for row in rows:
        record = {
            f: row._mapping[f]
            for f in ("hostname", "ip", "platform", "machine_type", "idc", "env", "status", "owner")
        }
        record.update(roles=[], lines={}, apps={}, version=row.version)
        by_id[row.id] = record
    if not by_id:
        return []
    ids = list(by_id)
    id_chunks = [None] if all_rows else list(_chunks(ids))
    for chunk in id_chunks:
        for table, fill in (
            (host_roles, lambda rec, r: rec["roles"].append(r.role)),
            (host_lines, lambda rec, r: rec["lines"].__setitem__(r.line, r.address)),
            (host_apps, lambda rec, r: rec["apps"].__setitem__(r.app, r.settings)),
        ):
            query = sa.select(table)
            if chunk is not None:
                query = query.where(table.c.host_id.in_(chunk))
            for r in conn.execute(query):
                rec = by_id.get(r.host_id)
                if rec is not None:
                    fill(rec, r)
    out = sorted(by_id.values(), key=lambda rec: rec["hostname"])
    for rec in out:
        rec["roles"].sort()
    return out


def list_hosts(conn, **filters):
    """Hosts matching every given filter, as full records sorted by hostname."""
    active = {k: v for k, v in filters.items() if v not in (None, "")}
    rows = conn.execute(_host_query(active)).all()
    return _attach(conn, rows, all_rows=not active)


def get_hosts(conn, hostnames):
    """Full records for the given hostnames that exist, keyed by hostname."""
    found = {}
    for chunk in _chunks(sorted(set(hostnames))):
        rows = conn.execute(sa.select(hosts).where(hosts.c.hostname.in_(chunk))).all()
        for rec in _attach(conn, rows):
            found[rec["hostname"]] = rec
    return found


def get_host(conn, hostname):
    found = get_hosts(conn, [hostname])
    if hostname not in found:
        raise NotFound(f"host {hostname!r} is not in the CMDB")
    return found[hostname]


def changed_since(conn, version):
    """Records changed after ``version`` and the hostnames purged since, for snapshots."""
    rows = conn.execute(sa.select(hosts).where(hosts.c.version > version)).all()
    purged = [
        r.hostname
        for r in conn.execute(sa.select(tombstones.c.hostname).where(tombstones.c.version > version))
    ]
    return _attach(conn, rows), purged


def _comparable(record):
    return {f: record.get(f) for f in FIELDS}


def _insert_children(conn, rows_by_host):
    roles, lines, apps = [], [], []
    for host_id, rec in rows_by_host:
        roles += [{"host_id": host_id, "role": r} for r in rec["roles"]]
        lines += [{"host_id": host_id, "line": k, "address": v} for k, v in rec["lines"].items()]
        apps += [{"host_id": host_id, "app": k, "settings": v} for k, v in rec["apps"].items()]
    for table, values in ((host_roles, roles), (host_lines, lines), (host_apps, apps)):
        for chunk in _chunks(values):
            conn.execute(table.insert(), chunk)


def _delete_children(conn, host_ids):
    for chunk in _chunks(host_ids):
        for table in (host_roles, host_lines, host_apps):
            conn.execute(table.delete().where(table.c.host_id.in_(chunk)))


def balancers_touched(conn, changed, lb_serves, pending=()):
    """Balancer hosts whose backend list may differ after a change.

    ``changed`` holds ``(before, after)`` records (``None`` for an added or
    purged host); a balancer counts when it has a role of ``lb_serves`` in the
    env of a changed host of a served role, before or after the change.
    ``pending``: the records of a change not written yet (a dry run), read as
    if they were, so the answer is the one the write would give.
    """
    served = set(lb_serves.values())
    envs = set()
    for before, after in changed:
        for rec in (before, after):
            if rec and served & set(rec.get("roles", [])):
                envs.add(rec.get("env"))
    if not envs:
        return []
    query = (
        sa.select(hosts.c.hostname)
        .where(hosts.c.env.in_(sorted(e for e in envs if e)))
        .where(
            hosts.c.id.in_(sa.select(host_roles.c.host_id).where(host_roles.c.role.in_(sorted(lb_serves))))
        )
    )
    names = {r.hostname for r in conn.execute(query)}
    for rec in pending:
        names.discard(rec["hostname"])
        if rec.get("env") in envs and set(lb_serves) & set(rec.get("roles", [])):
            names.add(rec["hostname"])
    return sorted(names)


def plan(conn, records, rules, mode="upsert"):
    """Validate ``records`` and work out what writing them would change.

    Returns ``{"add": [...], "update": [(before, after)], "unchanged": [...]}``.
    Raises :class:`ValidationError` with every problem (all records are checked).
    """
    problems = []
    valid = []
    seen = {}
    for index, data in enumerate(records):
        where = data.pop("__where__", None) if isinstance(data, dict) else None
        label = where or f"record {index + 1}"
        try:
            rec = validate_host(data, rules)
        except ValidationError as err:
            problems += [f"{label}: {p}" for p in err.problems] or [f"{label}: {err}"]
            continue
        if rec["hostname"] in seen:
            problems.append(
                f"{label}: duplicate hostname {rec['hostname']!r} (first at {seen[rec['hostname']]})"
            )
            continue
        seen[rec["hostname"]] = label
        valid.append((label, rec))
    current = get_hosts(conn, [rec["hostname"] for _, rec in valid])
    out = {"add": [], "update": [], "unchanged": []}
    for label, rec in valid:
        before = current.get(rec["hostname"])
        if before is None:
            if mode == "update":
                problems.append(f"{label}: host {rec['hostname']!r} is not in the CMDB")
            else:
                out["add"].append(rec)
        elif mode == "add":
            problems.append(f"{label}: host {rec['hostname']!r} is already in the CMDB")
        elif _comparable(before) == _comparable(rec):
            out["unchanged"].append(rec["hostname"])
        else:
            out["update"].append((before, rec))
    if problems:
        raise ValidationError(f"{len(problems)} problem(s); nothing was changed", problems)
    return out


def write(
    store, actor, records=(), rules=None, mode="upsert", action=None, lb_serves=None, dry_run=False, announce=True
):
    """Validate and write host records in one transaction.

    ``mode``: ``add`` (every host must be new), ``update`` (every host must
    exist) or ``upsert``.  Returns a summary with the new CMDB ``version``;
    with ``dry_run`` the summary shows what would change and nothing is written.
    ``announce=False`` queues no ``saltops/cmdb/changed`` event (seeding a CMDB
    before any minion exists); the change is audited all the same, and the
    reactor refuses to refresh for its version.
    """
    with store.begin() as conn:
        if not dry_run:
            cmdb_version.lock(conn)
        return _write(conn, actor, records, rules, mode, action, lb_serves, dry_run, announce)


def count_hosts(conn):
    """How many hosts the CMDB holds (decommissioned ones included, purged ones not)."""
    return conn.execute(sa.select(sa.func.count()).select_from(hosts)).scalar()


def _write(conn, actor, records, rules, mode, action, lb_serves, dry_run, announce=True):
    """:func:`write` inside the caller's transaction (which holds the write lock unless ``dry_run``)."""
    action = action or mode
    lb_serves = lb_serves or {}
    changes = plan(conn, [dict(r) if isinstance(r, dict) else r for r in records], rules, mode=mode)
    summary = {
        "added": [r["hostname"] for r in changes["add"]],
        "updated": [after["hostname"] for _, after in changes["update"]],
        "unchanged": changes["unchanged"],
        "diff": {after["hostname"]: _diff(before, after) for before, after in changes["update"]},
    }
    if dry_run or not (changes["add"] or changes["update"]):
        # What the write would touch, from the records it would write.
        pending = [(None, r) for r in changes["add"]] + changes["update"]
        balancers = balancers_touched(conn, pending, lb_serves, [r for _, r in pending])
        summary.update(version=cmdb_version.current(conn), dry_run=bool(dry_run), balancers=balancers)
        # Nothing to write: the caller's transaction commits nothing.
        return summary
    version = cmdb_version.bump(conn)
    now = audit.utcnow()
    # New hosts.
    new_rows = [
        {
            **{
                f: rec[f]
                for f in ("hostname", "ip", "platform", "machine_type", "idc", "env", "status", "owner")
            },
            "version": version,
            "created_at": now,
            "updated_at": now,
        }
        for rec in changes["add"]
    ]
    for chunk in _chunks(new_rows):
        conn.execute(hosts.insert(), chunk)
    # Changed hosts: rewrite the row and replace roles/lines/apps.
    for before, rec in changes["update"]:
        conn.execute(
            hosts.update()
            .where(hosts.c.hostname == rec["hostname"])
            .values(
                **{
                    f: rec[f] for f in ("ip", "platform", "machine_type", "idc", "env", "status", "owner")
                },
                version=version,
                updated_at=now,
            )
        )
    written = [r["hostname"] for r in changes["add"]] + [r["hostname"] for _, r in changes["update"]]
    ids = {}
    for chunk in _chunks(written):
        for row in conn.execute(
            sa.select(hosts.c.id, hosts.c.hostname).where(hosts.c.hostname.in_(chunk))
        ):
            ids[row.hostname] = row.id
    _delete_children(conn, [ids[r["hostname"]] for _, r in changes["update"]])
    all_recs = changes["add"] + [r for _, r in changes["update"]]
    _insert_children(conn, [(ids[r["hostname"]], r) for r in all_recs])
    # Re-adding a purged host clears its tombstone.
    for chunk in _chunks(written):
        conn.execute(tombstones.delete().where(tombstones.c.hostname.in_(chunk)))
    audit_rows = [(None, r) for r in changes["add"]] + changes["update"]
    _audit_many(conn, actor, action, audit_rows, version)
    balancers = balancers_touched(conn, audit_rows, lb_serves)
    if announce:
        _announce(conn, version, written, balancers, action)
    summary.update(version=version, dry_run=False, balancers=balancers)
    return summary


def remove(store, actor, hostnames, purge=False, lb_serves=None):
    """Decommission hosts (status ``decommissioned``), or delete them with ``purge``."""
    lb_serves = lb_serves or {}
    names = sorted(set(hostnames))
    with store.begin() as conn:
        cmdb_version.lock(conn)
        current = get_hosts(conn, names)
        missing = [n for n in names if n not in current]
        if missing:
            raise NotFound(f"not in the CMDB: {', '.join(missing)}; nothing was changed")
        if not purge and all(current[n]["status"] == "decommissioned" for n in names):
            return {
                "version": cmdb_version.current(conn),
                "removed": [],
                "purged": [],
                "unchanged": names,
                "balancers": [],
            }
        version = cmdb_version.bump(conn)
        now = audit.utcnow()
        pairs = []
        if purge:
            for chunk in _chunks(names):
                conn.execute(hosts.delete().where(hosts.c.hostname.in_(chunk)))
                existing = {
                    r.hostname
                    for r in conn.execute(
                        sa.select(tombstones.c.hostname).where(tombstones.c.hostname.in_(chunk))
                    )
                }
                conn.execute(
                    tombstones.update().where(tombstones.c.hostname.in_(existing)).values(version=version)
                )
                new = [{"hostname": n, "version": version} for n in chunk if n not in existing]
                if new:
                    conn.execute(tombstones.insert(), new)
            pairs = [(current[n], None) for n in names]
        else:
            for chunk in _chunks(names):
                conn.execute(
                    hosts.update()
                    .where(hosts.c.hostname.in_(chunk))
                    .values(status="decommissioned", version=version, updated_at=now)
                )
            pairs = [(current[n], {**current[n], "status": "decommissioned"}) for n in names]
        action = "purge" if purge else "remove"
        _audit_many(conn, actor, action, pairs, version)
        balancers = balancers_touched(conn, pairs, lb_serves)
        _announce(conn, version, names, balancers, action)
        return {
            "version": version,
            "removed": [] if purge else names,
            "purged": names if purge else [],
            "unchanged": [],
            "balancers": balancers,
        }


def update(store, actor, hostname, changes, rules, lb_serves=None):
    """Change some fields of one host; the others keep their values."""
    # Read, merge and write in one transaction under the write lock: two
    # updates of different fields of one host both survive, and each audit
    # row's "before" is what the previous update left.
    with store.begin() as conn:
        cmdb_version.lock(conn)
        current = get_host(conn, hostname)
        merged = merge_update(current, changes)
        merged["__where__"] = f"host {hostname!r}"
        return _write(conn, actor, [merged], rules, "update", "update", lb_serves, False)


def _audit_many(conn, actor, action, pairs, version):
    items = [
        (
            (after or before)["hostname"],
            _comparable(before) if before else None,
            _comparable(after) if after else None,
        )
        for before, after in pairs
    ]
    audit.record_many(conn, actor, action, "host", items, version)


def _announce(conn, version, hostnames, balancers, action):
    names = sorted(set(hostnames))
    data = {"version": version, "action": action, "count": len(names), "balancers": balancers}
    if len(names) > EVENT_HOSTNAME_LIMIT:
        data.update(hostnames=None, all=True)
    else:
        data.update(hostnames=names, all=False)
    outbox.enqueue(conn, CHANGED_TAG, data)
    refreshes.queue(conn, version)


def _diff(before, after):
    """Field -> [before, after] for the fields that differ."""
    return {
        f: [before.get(f), after.get(f)] for f in FIELDS if f != "hostname" and before.get(f) != after.get(f)
    }


def affected_by_version(conn, version):
    """Hostnames and balancers touched by the change that produced ``version``.

    Read from the audit log, so that an event needs to carry only the version.
    """
    from saltops.store.schema import audit_log

    rows = conn.execute(
        sa.select(audit_log.c.object_id, audit_log.c.before, audit_log.c.after).where(
            audit_log.c.version == int(version), audit_log.c.object_type == "host"
        )
    ).all()
    return [r.object_id for r in rows], [(r.before, r.after) for r in rows]
