"""Which hosts a CMDB change gave an app: read from the audit log, never from an event."""

import sqlalchemy as sa

from saltops.store.schema import audit_log


def new_app_hosts(conn, version):
    """``{(app, env): [hostnames]}`` that the CMDB change of ``version`` gave the app.

    A host gains an app in an env when, after the change, its record lists
    the app in that env and before it did not (a new host, an added app, a
    move to another env).  Hosts the change left offline or decommissioned
    are left out.
    """
    rows = conn.execute(
        sa.select(audit_log.c.object_id, audit_log.c.before, audit_log.c.after).where(
            audit_log.c.version == int(version), audit_log.c.object_type == "host"
        )
    ).all()
    out = {}
    for row in rows:
        after = row.after if isinstance(row.after, dict) else None
        if not after or after.get("status") not in ("online", "maintenance"):
            continue
        before = row.before if isinstance(row.before, dict) else {}
        had = set(before.get("apps") or {}) if before.get("env") == after.get("env") else set()
        for app in sorted(set(after.get("apps") or {}) - had):
            out.setdefault((app, after.get("env")), []).append(row.object_id)
    return {key: sorted(names) for key, names in out.items()}
