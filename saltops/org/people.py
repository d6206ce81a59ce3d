"""Users, departments, roles, managers and delegates: checks, storage and the questions tickets ask.

A YAML file (:func:`parse`, :func:`load`) replaces what an earlier file put
in the store, all or nothing; :func:`sync_eauth` adds the people and roles of
the master's ``external_auth`` settings.  Every change writes audit rows
(object type ``org``) in its transaction.
"""

import re

import sqlalchemy as sa
import yaml

from saltops.errors import NotFound, ValidationError
from saltops.org.schema import delegates, departments, user_roles, users
from saltops.store import audit

NAME = re.compile(r"^[\w.@+-]{1,128}$")
_USER_KEYS = {"display_name", "email", "phone", "department", "manager", "roles"}
_TOP_KEYS = {"departments", "users", "delegates"}
_DELEGATE_KEYS = {"from", "to", "until", "since"}


def _name(problems, where, value):
    if not isinstance(value, str) or not NAME.match(value):
        problems.append(f"{where}: {value!r} is not a valid name (letters, digits, . _ @ + -)")
        return False
    return True


def _time(problems, where, value):
    """POSIX seconds from a number or an ISO 8601 date/time (UTC when no zone is given)."""
    import datetime

    if isinstance(value, bool):
        problems.append(f"{where}: {value!r} is not a time")
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, datetime.date):
        moment = datetime.datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            problems.append(f"{where}: {value!r} is not a time (e.g. 2026-12-31T18:00:00Z)")
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def parse(text):
    """The org document in ``text`` (YAML), checked and normalised; :class:`ValidationError` listing every problem.

    ``departments: {NAME: {head: USER}}``, ``users: {NAME: {department,
    manager, roles: [..], display_name, email, phone}}``, ``delegates: [{from:
    USER, to: USER, until: TIME, since: TIME}]``.  Every name referenced must
    be defined in the same document.
    """
    try:
        doc = yaml.safe_load(text) if isinstance(text, str) else text
    except yaml.YAMLError as err:
        raise ValidationError(f"the org file is not valid YAML: {err}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ValidationError("the org file must be a mapping with departments, users and delegates")
    problems = [f"{key}: unknown key (known: {', '.join(sorted(_TOP_KEYS))})" for key in doc if key not in _TOP_KEYS]
    raw_depts = doc.get("departments") or {}
    raw_users = doc.get("users") or {}
    raw_delegates = doc.get("delegates") or []
    if not isinstance(raw_depts, dict):
        problems.append("departments: must be a mapping of department name -> {head: USER}")
        raw_depts = {}
    if not isinstance(raw_users, dict):
        problems.append("users: must be a mapping of user name -> settings")
        raw_users = {}
    if not isinstance(raw_delegates, list):
        problems.append("delegates: must be a list of {from, to, until}")
        raw_delegates = []
    out_users = {}
    for name, spec in raw_users.items():
        where = f"users.{name}"
        if not _name(problems, where, name):
            continue
        spec = {} if spec is None else spec
        if not isinstance(spec, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        problems.extend(f"{where}.{key}: unknown key (known: {', '.join(sorted(_USER_KEYS))})"
                        for key in spec if key not in _USER_KEYS)
        roles = spec.get("roles") or []
        if isinstance(roles, str):
            roles = [r.strip() for r in roles.split(",") if r.strip()]
        if not isinstance(roles, list):
            problems.append(f"{where}.roles: must be a list of role names")
            roles = []
        for role in roles:
            _name(problems, f"{where}.roles", role)
        record = {"name": name, "roles": sorted(set(map(str, roles)))}
        for key in ("display_name", "email", "phone", "department", "manager"):
            value = spec.get(key)
            if value is not None and not isinstance(value, (str, int)):
                problems.append(f"{where}.{key}: must be text")
                value = None
            record[key] = None if value is None else str(value)
        out_users[name] = record
    out_depts = {}
    for name, spec in raw_depts.items():
        where = f"departments.{name}"
        if not _name(problems, where, name):
            continue
        spec = {} if spec is None else spec
        if not isinstance(spec, dict) or set(spec) - {"head"}:
            problems.append(f"{where}: must be a mapping with only 'head'")
            continue
        head = spec.get("head")
        if head is not None and head not in out_users:
            problems.append(f"{where}.head: unknown user {head!r}")
        out_depts[name] = {"name": name, "head": head}
    for name, record in out_users.items():
        if record["department"] is not None and record["department"] not in out_depts:
            problems.append(f"users.{name}.department: unknown department {record['department']!r}")
        if record["manager"] is not None:
            if record["manager"] not in out_users:
                problems.append(f"users.{name}.manager: unknown user {record['manager']!r}")
            elif record["manager"] == name:
                problems.append(f"users.{name}.manager: a user cannot be their own manager")
    out_delegates = []
    for index, spec in enumerate(raw_delegates):
        where = f"delegates[{index}]"
        if not isinstance(spec, dict):
            problems.append(f"{where}: must be a mapping with from, to, until")
            continue
        problems.extend(f"{where}.{key}: unknown key (known: {', '.join(sorted(_DELEGATE_KEYS))})"
                        for key in spec if key not in _DELEGATE_KEYS)
        for key in ("from", "to"):
            if spec.get(key) not in out_users:
                problems.append(f"{where}.{key}: unknown user {spec.get(key)!r}")
        if spec.get("from") == spec.get("to"):
            problems.append(f"{where}: a user cannot be their own delegate")
        if "until" not in spec:
            problems.append(f"{where}.until: required (a delegation always ends)")
            continue
        ends = _time(problems, f"{where}.until", spec["until"])
        starts = _time(problems, f"{where}.since", spec["since"]) if spec.get("since") is not None else 0.0
        if ends is not None and starts is not None and ends <= starts:
            problems.append(f"{where}: until must be after since")
        out_delegates.append({"principal": spec.get("from"), "delegate": spec.get("to"),
                              "starts_at": starts, "ends_at": ends})
    if problems:
        raise ValidationError("the org file is invalid; nothing was changed", problems)
    return {"users": out_users, "departments": out_depts, "delegates": out_delegates}


def _snapshot(conn):
    people = {row.name: dict(row._mapping) for row in conn.execute(sa.select(users))}
    for person in people.values():
        person["roles"] = []
    for row in conn.execute(sa.select(user_roles).order_by(user_roles.c.role)):
        if row.user in people:
            people[row.user]["roles"].append(row.role)
    depts = {row.name: dict(row._mapping) for row in conn.execute(sa.select(departments))}
    return people, depts


def load(store, actor, text, now):
    """Replace the file-defined org with the document in ``text``; a summary of what changed.

    People and roles that came from ``external_auth`` (:func:`sync_eauth`) stay.
    The file's delegations are added (existing ones are kept until they end).
    """
    doc = parse(text)
    with store.begin() as conn:
        before_users, before_depts = _snapshot(conn)
        conn.execute(user_roles.delete().where(user_roles.c.source == "yaml"))
        conn.execute(users.delete().where(users.c.source == "yaml"))
        conn.execute(users.delete().where(users.c.name.in_(list(doc["users"]))))
        conn.execute(departments.delete())
        if doc["departments"]:
            conn.execute(departments.insert(), list(doc["departments"].values()))
        if doc["users"]:
            conn.execute(users.insert(), [
                {k: v for k, v in rec.items() if k != "roles"} | {"source": "yaml"} for rec in doc["users"].values()
            ])
            held = {(row.user, row.role) for row in conn.execute(sa.select(user_roles))}
            rows = [{"user": rec["name"], "role": role, "source": "yaml"}
                    for rec in doc["users"].values() for role in rec["roles"] if (rec["name"], role) not in held]
            if rows:
                conn.execute(user_roles.insert(), rows)
        for item in doc["delegates"]:
            conn.execute(delegates.insert().values(**item, created_by=actor, created_at=now))
        after_users, after_depts = _snapshot(conn)
        changes = _audit_diff(conn, actor, "org.load", before_users, after_users, "user")
        changes += _audit_diff(conn, actor, "org.load", before_depts, after_depts, "department")
        if doc["delegates"]:
            audit.record(conn, actor, "org.delegate", "org", "delegates", None, doc["delegates"])
    return {"users": len(doc["users"]), "departments": len(doc["departments"]),
            "delegates": len(doc["delegates"]), "changed": changes}


def _audit_diff(conn, actor, action, before, after, kind):
    items = [(f"{kind}:{key}", before.get(key), after.get(key))
             for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]
    if items:
        audit.record_many(conn, actor, action, "org", items)
    return [item[0] for item in items]


def eauth_roles(external_auth):
    """``({user: set(roles)}, {group role names})`` named by the master's ``external_auth`` setting.

    Under each eauth backend, a plain key is a user, a key ending in ``%`` a
    group whose members get the role of the group's name.
    """
    people, groups = {}, set()
    if not isinstance(external_auth, dict):
        raise ValidationError("external_auth must be a mapping of eauth backend -> users and groups")
    for backend, entries in external_auth.items():
        if not isinstance(entries, dict):
            raise ValidationError(f"external_auth.{backend} must be a mapping of users and groups")
        for key in entries:
            key = str(key)
            if key.endswith("%"):
                groups.add(key[:-1])
            elif key not in ("*",) and NAME.match(key):
                people.setdefault(key, set())
    return people, groups


def sync_eauth(store, actor, external_auth, groups_of):
    """Add the users of ``external_auth`` and give each the roles of its eauth groups.

    ``groups_of(user)`` names the groups a user belongs to (the runner hands in
    Salt's lookup, the one its PAM eauth uses).  Roles synced earlier are
    replaced by the current ones; roles from the org file are left alone.
    """
    people, groups = eauth_roles(external_auth)
    with store.begin() as conn:
        known = {row.name for row in conn.execute(sa.select(users.c.name))}
        # Members of the groups may be people the org file defines: they get the roles too.
        for name in known:
            people.setdefault(name, set())
        for name in people:
            people[name] = {g for g in groups_of(name) or () if g in groups}
        before_users, _ = _snapshot(conn)
        new = sorted(set(people) - known)
        if new:
            conn.execute(users.insert(), [{"name": n, "display_name": None, "email": None, "phone": None,
                                           "department": None, "manager": None, "source": "eauth"} for n in new])
        conn.execute(user_roles.delete().where(user_roles.c.source == "eauth"))
        yaml_roles = {(row.user, row.role) for row in conn.execute(sa.select(user_roles))}
        rows = [{"user": n, "role": r, "source": "eauth"}
                for n, roles in sorted(people.items()) for r in sorted(roles) if (n, r) not in yaml_roles]
        if rows:
            conn.execute(user_roles.insert(), rows)
        after_users, _ = _snapshot(conn)
        changed = _audit_diff(conn, actor, "org.sync_eauth", before_users, after_users, "user")
    return {"users_added": new, "roles": {n: sorted(r) for n, r in sorted(people.items()) if r},
            "changed": changed}


def add_delegate(store, actor, principal, delegate, until, now, since=None):
    """``delegate`` approves for ``principal`` (the acting user) from ``since`` (now) until ``until``."""
    problems = []
    ends = _time(problems, "until", until)
    starts = _time(problems, "since", since) if since is not None else now
    if problems:
        raise ValidationError("invalid delegation; nothing was changed", problems)
    if ends <= max(starts, now):
        raise ValidationError("invalid delegation; nothing was changed", ["until must be in the future"])
    if principal == delegate:
        raise ValidationError("invalid delegation; nothing was changed", ["a user cannot be their own delegate"])
    with store.begin() as conn:
        for name in (principal, delegate):
            if not exists(conn, name):
                raise NotFound(f"unknown user {name!r} (load the org file or sync eauth first); nothing was changed")
        row = {"principal": principal, "delegate": delegate, "starts_at": starts, "ends_at": ends,
               "created_by": actor, "created_at": now}
        new_id = conn.execute(delegates.insert().values(**row)).inserted_primary_key[0]
        audit.record(conn, actor, "org.delegate", "org", f"delegate:{new_id}", None, row)
    return {"id": new_id, **row}


# --------------------------------------------------------------------------- questions


def exists(conn, name):
    return conn.execute(sa.select(users.c.name).where(users.c.name == name)).first() is not None


def show(conn, name):
    """One person: their fields, roles and the delegations that concern them."""
    row = conn.execute(sa.select(users).where(users.c.name == name)).first()
    if row is None:
        raise NotFound(f"unknown user {name!r}")
    out = dict(row._mapping)
    out["roles"] = roles_of(conn, name)
    return out


def listing(conn):
    """Everything: users (with roles), departments, delegations."""
    people, depts = _snapshot(conn)
    dels = [dict(r._mapping) for r in conn.execute(sa.select(delegates).order_by(delegates.c.id))]
    return {"users": people, "departments": depts, "delegates": dels}


def roles_of(conn, name):
    return [r[0] for r in conn.execute(sa.select(user_roles.c.role).where(user_roles.c.user == name)
                                       .order_by(user_roles.c.role))]


def has_role(conn, name, role):
    return conn.execute(sa.select(user_roles.c.user).where(
        (user_roles.c.user == name) & (user_roles.c.role == role))).first() is not None


def members(conn, role):
    return [r[0] for r in conn.execute(sa.select(user_roles.c.user).where(user_roles.c.role == role)
                                       .order_by(user_roles.c.user))]


def role_exists(conn, role):
    return conn.execute(sa.select(user_roles.c.role).where(user_roles.c.role == role)).first() is not None


def department_head(conn, department):
    """The head of ``department``; :class:`NotFound` when the department is unknown."""
    row = conn.execute(sa.select(departments.c.head).where(departments.c.name == department)).first()
    if row is None:
        raise NotFound(f"unknown department {department!r}")
    return row[0]


def manager_of(conn, name):
    row = conn.execute(sa.select(users.c.manager).where(users.c.name == name)).first()
    return None if row is None else row[0]


def principals_for(conn, delegate, now):
    """The people ``delegate`` may approve for at ``now`` (active delegations)."""
    query = sa.select(delegates.c.principal).where(
        (delegates.c.delegate == delegate) & (delegates.c.starts_at <= now) & (delegates.c.ends_at > now))
    return sorted({r[0] for r in conn.execute(query)})


def delegates_of(conn, principal, now):
    """The people who may approve for ``principal`` at ``now``."""
    query = sa.select(delegates.c.delegate).where(
        (delegates.c.principal == principal) & (delegates.c.starts_at <= now) & (delegates.c.ends_at > now))
    return sorted({r[0] for r in conn.execute(query)})
