"""The CMDB operations behind the ``cmdb`` runner, free of Salt.

Each function takes a :class:`~saltops.store.engine.Store`, the effective
``saltops:`` config and, for writes, the acting user; it returns plain data
and raises :mod:`saltops.errors` exceptions.  The runner adds only what needs
Salt: who is acting, the Salt clients, and firing events.
"""

import datetime
import re

import sqlalchemy as sa

from saltops.cmdb import drift as cmdb_drift
from saltops.cmdb import import_export, refreshes, repo
from saltops.cmdb import version as cmdb_version
from saltops.cmdb.model import FIELDS, Rules, check_hostname, excerpt
from saltops.cmdb.schema import host_roles, hosts
from saltops.errors import NotFound, StoreUnavailable, ValidationError
from saltops.store import audit, outbox

# Filters the runner accepts (``repo.FILTERS`` also has machine_type and owner).
LIST_FILTERS = repo.FILTERS
_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def rules(conf):
    return Rules.from_config(conf)


def lb_serves(conf):
    return conf["cmdb"]["lb_serves"]


def _hostname(value):
    try:
        return check_hostname(value)
    except ValueError as err:
        raise ValidationError(str(err)) from None


def parse_filters(filters):
    """Normalise runner filters: ``role=web,lb`` -> ``{"role": ["web", "lb"]}``; unknown keys rejected."""
    out = {}
    unknown = sorted(k for k in filters if k not in LIST_FILTERS)
    if unknown:
        raise ValidationError(f"unknown filter(s): {', '.join(unknown)} (known: {', '.join(LIST_FILTERS)})")
    for key, value in filters.items():
        if value in (None, ""):
            continue
        if isinstance(value, (list, tuple, set)):
            values = [str(v).strip() for v in value]
        else:
            values = [v.strip() for v in str(value).split(",")]
        values = [v for v in values if v]
        if values:
            out[key] = values
    return out


def announce(store, summary, calls):
    """After a committed write: fire its queued ``saltops/cmdb/changed`` event through ``calls``.

    Events stay queued when the master bus is not there; the summary then says
    how many (``events_pending``) and that the next write fires them.
    """
    if summary.get("dry_run") or not any(summary.get(k) for k in ("added", "updated", "removed", "purged")):
        return summary
    with calls.firing() as fire:
        outbox.flush(store, fire)
    try:
        pending = outbox.pending_count(store)
    except StoreUnavailable:
        pending = None
    if pending:
        summary["events_pending"] = pending
        summary["warning"] = (
            f"the change is committed but {pending} saltops/cmdb/changed event(s) could not be fired "
            "(is the master running?); the next CMDB write fires them"
        )
    return summary


def add(store, conf, actor, record):
    record = {k: v for k, v in record.items() if v is not None}
    record["__where__"] = f"host {excerpt(record.get('hostname'))}"
    return repo.write(
        store, actor, [record], rules=rules(conf), mode="add", action="add", lb_serves=lb_serves(conf)
    )


def update(store, conf, actor, hostname, changes):
    if not changes:
        raise ValidationError(f"no fields to change for {excerpt(hostname)} (fields: {', '.join(FIELDS[1:])})")
    unknown = sorted(k for k in changes if k not in FIELDS)
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(unknown)} (fields: {', '.join(FIELDS[1:])})")
    return repo.update(store, actor, _hostname(hostname), changes, rules(conf), lb_serves=lb_serves(conf))


def remove(store, conf, actor, hostnames, purge=False):
    if isinstance(hostnames, str):
        hostnames = [h for h in hostnames.split(",") if h.strip()]
    names = [_hostname(h) for h in hostnames or []]
    if not names:
        raise ValidationError("name at least one host to remove")
    return repo.remove(store, actor, names, purge=bool(purge), lb_serves=lb_serves(conf))


def show(store, hostname):
    with store.connect() as conn:
        return repo.get_host(conn, _hostname(hostname))


def list_hosts(store, filters):
    with store.connect() as conn:
        return repo.list_hosts(conn, **parse_filters(filters))


def targets(store, filters):
    """Hostnames (== minion ids) matching the filters; decommissioned hosts only when asked for by status."""
    parsed = parse_filters(filters)
    if "status" not in parsed:
        parsed["status"] = [s for s in ("online", "maintenance", "offline")]
    with store.connect() as conn:
        return [rec["hostname"] for rec in repo.list_hosts(conn, **parsed)]


def import_hosts(store, conf, actor, path=None, text=None, fmt=None, dry_run=False, mode="upsert"):
    if mode not in ("upsert", "add", "update"):
        raise ValidationError(f"mode {mode!r} is not one of upsert, add, update")
    body, fmt, origin = import_export.read_source(
        path=path, text=text, fmt=fmt, allowed_roots=conf["cmdb"].get("import_roots")
    )
    return import_export.import_hosts(
        store,
        actor,
        body,
        fmt,
        rules(conf),
        origin=origin,
        dry_run=dry_run,
        mode=mode,
        lb_serves=lb_serves(conf),
    )


def export_hosts(store, fmt="yaml", filters=None):
    if str(fmt).lower() not in import_export.FORMATS + ("yml",):
        raise ValidationError(f"unknown format {fmt!r} (known: {', '.join(import_export.FORMATS)})")
    parsed = parse_filters(filters or {})
    with store.connect() as conn:
        version = cmdb_version.current(conn)
        records = repo.list_hosts(conn, **parsed)
    return import_export.export_hosts(records, fmt, version=version)


def drift(store, conf, keys, calls, timeout=None):
    """:func:`saltops.cmdb.drift.compare` of the CMDB with the minion ``keys`` and the grains of those that answer.

    ``keys``: minion ids by key state (``accepted``, ``pending``, ``rejected``,
    ``denied``); ``calls``: a :class:`saltops.saltcalls.SaltCalls` to ask the
    minions with an accepted key for their grains (one ``grains.item`` call).
    """
    try:
        timeout = int(timeout if timeout is not None else conf["cmdb"]["drift_timeout"])
    except (TypeError, ValueError):
        raise ValidationError(f"timeout={timeout!r} is not a number of seconds") from None
    if not 1 <= timeout <= 600:
        raise ValidationError("timeout must be between 1 and 600 seconds")
    records = list_hosts(store, {})
    probe = cmdb_drift.targets_to_probe(records, keys["accepted"])
    answers = {}
    if probe:
        returns = calls.run(probe, "grains.item", list(cmdb_drift.GRAINS), timeout=timeout, gather_job_timeout=timeout)
        answers = {minion: ret for minion, (ret, _code) in returns.items()}
    return cmdb_drift.compare(records, keys, answers, probe)


def parse_since(since, now=None):
    """``since`` as a naive UTC datetime: ISO 8601 (``2024-05-01``, ``2024-05-01T10:00:00Z``) or ``30m``/``12h``/``7d``."""
    if since in (None, ""):
        return None
    if isinstance(since, datetime.datetime):
        value = since
    elif isinstance(since, datetime.date):
        value = datetime.datetime.combine(since, datetime.time())
    else:
        text = str(since)
        match = _RELATIVE.match(text)
        if match:
            now = now or audit.utcnow()
            return now - datetime.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        try:
            value = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                f"since={since!r} is neither an ISO 8601 time (2024-05-01T10:00:00Z) nor an age like 30m, 12h, 7d"
            ) from None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


def history(store, hostname=None, actor=None, since=None, limit=100):
    try:
        limit = int(limit)
    except (TypeError, ValueError):
        raise ValidationError(f"limit={limit!r} is not a number") from None
    if not 1 <= limit <= 100000:
        raise ValidationError("limit must be between 1 and 100000")
    start = parse_since(since)
    name = _hostname(hostname) if hostname else None
    with store.connect() as conn:
        return audit.history(
            conn, object_type="host", object_id=name, actor=actor or None, since=start, limit=limit
        )


# Balancer states are applied on balancers in these statuses only: an offline
# host is not running, a decommissioned one gets the safe base only (top.sls).
APPLY_STATUSES = ("online", "maintenance")


def _refresh_version(version):
    if isinstance(version, bool):
        raise ValidationError("version must be a CMDB version number")
    try:
        version = int(str(version).strip())
    except (TypeError, ValueError):
        raise ValidationError(f"version={version!r} is not a CMDB version number") from None
    if version < 1:
        raise ValidationError(f"version={version} is not a CMDB version number (they start at 1)")
    return version


def _read_change(conn, version):
    current = cmdb_version.current(conn)
    if version > current:
        raise NotFound(f"CMDB version {version} does not exist yet (current: {current})")
    return repo.affected_by_version(conn, version)


def _targets(conn, conf, version, names, pairs):
    balancers = repo.balancers_touched(conn, pairs, lb_serves(conf)) if pairs else []
    hosts = sorted(set(names))
    return {
        "version": version,
        "hosts": hosts,
        "balancers": balancers,
        "all": len(hosts) + len(balancers) > repo.EVENT_HOSTNAME_LIMIT,
    }


def refresh_targets(store, conf, version):
    """Minions whose pillar the change that made CMDB ``version`` affects.

    Read from the audit log, so that the caller (the reactor) passes nothing but
    the version.  Returns ``{"version", "hosts", "balancers", "all"}``; ``all``
    is true when so many hosts changed that refreshing every minion is cheaper.
    """
    version = _refresh_version(version)
    with store.connect() as conn:
        names, pairs = _read_change(conn, version)
        return _targets(conn, conf, version, names, pairs)


def claim_refresh(store, version, by):
    """Take the one refresh a written CMDB ``version`` owes (the reactor's path).

    Returns ``(version, None)`` to the one caller that got it, else
    ``(version, reason)``: no write queued a refresh for that version (not
    written yet, a deploy flip, a made-up number) or it was already claimed.
    """
    version = _refresh_version(version)
    if refreshes.claim(store, version, by):
        return version, None
    with store.connect() as conn:
        state = refreshes.status(conn, version)
        current = cmdb_version.current(conn)
    if state == "claimed":
        return version, f"the refresh of CMDB version {version} was already done: nothing to do"
    if version > current:
        return version, f"CMDB version {version} does not exist yet (current: {current}): nothing to do"
    return version, f"no CMDB write queued a refresh for version {version}: nothing to do"


def served_changes(pairs, served_roles):
    """``{(served role, env)}`` whose backend lists a change may have altered.

    ``pairs`` are the audit rows' ``(before, after)`` records (``None`` for an
    added or purged host); both sides count, so a web host moved from one env
    to another touches the balancers of both.
    """
    out = set()
    for before, after in pairs:
        for rec in (before, after):
            if not isinstance(rec, dict) or not rec.get("env"):
                continue
            for role in set(rec.get("roles") or []) & set(served_roles):
                out.add((role, rec["env"]))
    return out


def balancer_plan(rows, touched, serves, states):
    """Which state each balancer gets after a change (pure function).

    ``rows`` are ``(hostname, status, env, balancer role)`` for the balancer
    hosts of the envs concerned; ``touched`` is :func:`served_changes`;
    ``serves`` is ``lb_serves`` and ``states`` is ``balancer_states``.
    Returns ``{"apply": {hostname: [sls, ...]}, "skipped": {hostname: reason}}``:
    a balancer gets the state of each of its balancer roles whose served hosts
    changed in its env, if that role has a state and the host is online or in
    maintenance.  A balancer that gets nothing is in ``skipped`` with the reason.
    """
    apply, reasons = {}, {}
    for hostname, status, env, role in rows:
        if (serves.get(role), env) not in touched:
            continue
        sls = states.get(role)
        if not sls:
            reasons.setdefault(hostname, []).append(
                f"no saltops:cmdb:balancer_states entry for its role {role}: pillar refreshed only"
            )
        elif status not in APPLY_STATUSES:
            reasons.setdefault(hostname, []).append(f"status {status} in the CMDB")
        else:
            apply.setdefault(hostname, set()).add(sls)
    return {
        "apply": {h: sorted(s) for h, s in sorted(apply.items())},
        "skipped": {h: "; ".join(sorted(set(r))) for h, r in sorted(reasons.items()) if h not in apply},
    }


def _balancer_rows(conn, touched, serves):
    """``(hostname, status, env, role)`` of the hosts with a balancer role in the touched envs."""
    envs = sorted({env for _role, env in touched})
    roles = sorted(r for r, served in serves.items() if any(served == t for t, _env in touched))
    if not envs or not roles:
        return []
    query = (
        sa.select(hosts.c.hostname, hosts.c.status, hosts.c.env, host_roles.c.role)
        .select_from(hosts.join(host_roles, host_roles.c.host_id == hosts.c.id))
        .where(hosts.c.env.in_(envs))
        .where(host_roles.c.role.in_(roles))
        .order_by(hosts.c.hostname, host_roles.c.role)
    )
    return [tuple(row) for row in conn.execute(query)]


def refresh_plan(store, conf, version):
    """:func:`refresh_targets` plus the balancer states to apply after the refresh.

    Adds ``apply`` (balancer hostname -> the SLS names of ``balancer_states`` to
    apply) and ``skipped`` (balancer hostname -> why it gets no state).  Every
    name comes from the audit log and the CMDB, none from the caller.
    """
    version = _refresh_version(version)
    serves = lb_serves(conf)
    with store.connect() as conn:
        names, pairs = _read_change(conn, version)
        found = _targets(conn, conf, version, names, pairs)
        touched = served_changes(pairs, set(serves.values()))
        rows = _balancer_rows(conn, touched, serves) if touched else []
    found.update(balancer_plan(rows, touched, serves, conf["cmdb"].get("balancer_states") or {}))
    return found


def summarize_state_return(ret, retcode=None):
    """One minion's ``state.apply`` return as ``{result, retcode, states, changed, failed, errors}``.

    ``changed`` lists the IDs of the states that changed something and
    ``failed`` maps the IDs of failed states to their comment.  A return that is
    not a state result (render errors, a refused concurrent run) is a failure
    whose lines are in ``errors``.
    """
    if isinstance(ret, dict) and all(isinstance(v, dict) and "result" in v for v in ret.values()):
        changed, failed = [], {}
        for key, item in ret.items():
            sid = item.get("__id__") or key
            if item.get("changes"):
                changed.append(sid)
            if item.get("result") is False:
                failed[sid] = str(item.get("comment", ""))[:2000]
        ok = not failed and retcode in (None, 0)
        return {
            "result": ok,
            "retcode": retcode,
            "states": len(ret),
            "changed": sorted(changed),
            "failed": failed,
            "errors": [],
        }
    if isinstance(ret, (list, tuple)):
        errors = [str(e)[:2000] for e in ret]
    else:
        errors = [str(ret)[:2000]]
    return {
        "result": False,
        "retcode": retcode,
        "states": 0,
        "changed": [],
        "failed": {},
        "errors": errors,
    }
