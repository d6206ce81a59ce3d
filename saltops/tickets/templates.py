"""Ticket templates: versioned YAML in the store, checked when saved.

A template names its form fields, its approval steps and the automated
action (the Salt runner call that carries the request out)::

    name: host-maintenance
    description: Put a host in maintenance
    fields:
      - {name: host, type: host, required: true}
      - {name: env, type: choice, choices: [dev, prod], required: true}
      - {name: reason, type: str, min: 5, max: 200}
    steps:
      - {name: lead, manager: true}
      - {name: ops, role: ops, mode: all, when: "env == prod"}
    action:
      fun: cmdb.update
      args: ["{{ form.host }}"]
      kwargs: {status: maintenance}

:func:`save` stores a new version (tickets keep the version they were made
with); :func:`check` refuses unknown runners, fields, people, roles and
departments and bad types before anything is stored.  Form values reach the
action by plain substitution of whole values (``"{{ form.NAME }}"`` as the
entire string): no template engine ever sees the applicant's text.
"""

import re

import sqlalchemy as sa
import yaml

from saltops.errors import NotFound, ValidationError
from saltops.org import people
from saltops.store import audit
from saltops.tickets import conditions
from saltops.tickets.schema import templates

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
FIELD_NAME = re.compile(r"^[A-Za-z_]\w{0,63}$")
# ``ticket.create`` and ``ticket.resubmit`` take these themselves; a form field cannot be called so.
RESERVED_FIELDS = ("template", "title", "ticket_id", "comment")
FIELD_TYPES = ("str", "int", "bool", "choice", "host", "list")
_FIELD_KEYS = {"name", "type", "label", "required", "min", "max", "regex", "choices", "default"}
APPROVER_KINDS = ("user", "role", "department_head", "manager")
_STEP_KEYS = {"name", "mode", "when", "type", *APPROVER_KINDS}
_TOP_KEYS = {"name", "description", "fields", "steps", "action"}
_ACTION_KEYS = {"fun", "args", "kwargs", "targets"}

# The calls a ticket may end in: runner functions, and ``state.apply`` on the
# CMDB hosts its ``targets`` resolve to when the action fires.
ACTIONS = ("cmdb.update", "deploy.run", "confpush.push", "state.apply")
# Arguments the action's executor sets itself: a deploy always starts in the background, and the
# action waits for its end (saltops.bridge.ticketcalls).
SET_BY_EXECUTOR = {"deploy.run": ("background",)}
_REF = re.compile(r"^\{\{\s*form\.([A-Za-z_]\w*)\s*\}\}$")


# --------------------------------------------------------------------------- checks


def _check_field(problems, index, spec, seen):
    where = f"fields[{index}]"
    if not isinstance(spec, dict):
        problems.append(f"{where}: must be a mapping with name and type")
        return None
    name = spec.get("name")
    if not isinstance(name, str) or not FIELD_NAME.match(name):
        problems.append(f"{where}.name: {name!r} is not a valid field name")
        return None
    where = f"fields.{name}"
    if name in RESERVED_FIELDS:
        problems.append(f"{where}: {name!r} is taken by the ticket runner's own arguments "
                        f"({', '.join(RESERVED_FIELDS)})")
    if name in seen:
        problems.append(f"{where}: defined twice")
    problems.extend(f"{where}.{k}: unknown key (known: {', '.join(sorted(_FIELD_KEYS))})" for k in spec
                    if k not in _FIELD_KEYS)
    kind = spec.get("type", "str")
    if kind not in FIELD_TYPES:
        problems.append(f"{where}.type: unknown type {kind!r} (known: {', '.join(FIELD_TYPES)})")
        return None
    field = {"name": name, "type": kind, "label": str(spec.get("label") or name),
             "required": bool(spec.get("required", False))}
    if not isinstance(spec.get("required", False), bool):
        problems.append(f"{where}.required: must be true or false")
    for bound in ("min", "max"):
        if bound in spec:
            if kind in ("bool", "choice") or isinstance(spec[bound], bool) or not isinstance(spec[bound], int):
                problems.append(f"{where}.{bound}: must be a whole number, for an int, str, host or list field")
            else:
                field[bound] = spec[bound]
    if "min" in field and "max" in field and field["min"] > field["max"]:
        problems.append(f"{where}: min is greater than max")
    if "regex" in spec:
        if kind not in ("str", "host", "list"):
            problems.append(f"{where}.regex: only for str, host and list fields")
        else:
            try:
                re.compile(str(spec["regex"]))
                field["regex"] = str(spec["regex"])
            except re.error as err:
                problems.append(f"{where}.regex: not a regular expression: {err}")
    if "choices" in spec:
        choices = spec["choices"]
        if kind not in ("choice", "list") or not isinstance(choices, list) or not choices:
            problems.append(f"{where}.choices: a non-empty list, for a choice or list field")
        else:
            field["choices"] = [str(c) for c in choices]
    elif kind == "choice":
        problems.append(f"{where}.choices: required for a choice field")
    if "default" in spec:
        field["default"] = spec["default"]
    return field


def _refs(value, found):
    """Collect the ``{{ form.NAME }}`` references in ``value``; return the problems with partial ones."""
    problems = []
    if isinstance(value, str):
        match = _REF.match(value)
        if match:
            found.add(match.group(1))
        elif "{{" in value or "{%" in value:
            problems.append(f"{value!r}: a form value is referenced as a whole string, e.g. \"{{{{ form.host }}}}\"")
    elif isinstance(value, list):
        for item in value:
            problems.extend(_refs(item, found))
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(f"{key!r}: argument names are text")
            problems.extend(_refs(item, found))
    return problems


def _check_step(problems, index, spec, field_names):
    where = f"steps[{index}]"
    if isinstance(spec, str) and spec == "manager":
        spec = {"manager": True}
    if not isinstance(spec, dict):
        problems.append(f"{where}: must be a mapping with one of {', '.join(APPROVER_KINDS)}")
        return None
    problems.extend(f"{where}.{k}: unknown key (known: {', '.join(sorted(_STEP_KEYS))})" for k in spec
                    if k not in _STEP_KEYS)
    kinds = [k for k in APPROVER_KINDS if k in spec]
    if len(kinds) != 1:
        problems.append(f"{where}: needs exactly one approver: {', '.join(APPROVER_KINDS)} (got {kinds or 'none'})")
        return None
    kind = kinds[0]
    value = spec[kind]
    if kind == "manager":
        if value not in (True, None):
            problems.append(f"{where}.manager: write 'manager: true' (the applicant's manager)")
        value = None
    elif not isinstance(value, str) or not people.NAME.match(value):
        problems.append(f"{where}.{kind}: {value!r} is not a name")
    step = {"name": str(spec.get("name") or f"step{index + 1}")[:64], "approver": kind, "value": value,
            "mode": spec.get("mode", "any"), "type": spec.get("type", "approve"), "when": spec.get("when")}
    if step["mode"] not in ("any", "all"):
        problems.append(f"{where}.mode: {step['mode']!r} is not any or all")
    if step["type"] not in ("approve", "confirm"):
        problems.append(f"{where}.type: {step['type']!r} is not approve or confirm")
    if step["when"] is not None:
        try:
            conditions.parse(step["when"], field_names)
        except ValidationError as err:
            problems.append(f"{where}.when: {err}")
    return step


def _check_action(problems, spec, field_names, check_runner):
    if spec is None:
        return None
    if not isinstance(spec, dict):
        problems.append("action: must be a mapping with fun, args, kwargs")
        return None
    problems.extend(f"action.{k}: unknown key (known: {', '.join(sorted(_ACTION_KEYS))})" for k in spec
                    if k not in _ACTION_KEYS)
    fun = spec.get("fun")
    if fun not in ACTIONS:
        problems.append(f"action.fun: {fun!r} is not an allowed action (allowed: {', '.join(ACTIONS)})")
        return None
    args = spec.get("args", [])
    kwargs = spec.get("kwargs", {})
    if not isinstance(args, list):
        problems.append("action.args: must be a list")
        args = []
    if not isinstance(kwargs, dict):
        problems.append("action.kwargs: must be a mapping")
        kwargs = {}
    action = {"fun": fun, "args": args, "kwargs": kwargs}
    problems.extend(f"action.kwargs.{k}: set by the ticket itself ({fun} starts in the background and the "
                    f"action waits for its end); leave it out"
                    for k in SET_BY_EXECUTOR.get(fun, ()) if k in kwargs)
    used = set()
    problems.extend(f"action: {p}" for p in _refs(args, used) + _refs(kwargs, used))
    if fun == "state.apply":
        targets = spec.get("targets")
        if not isinstance(targets, dict) or not targets:
            problems.append("action.targets: a state run needs CMDB targets, e.g. {role: web, env: prod}")
        else:
            from saltops.tasks import targets as cmdb_targets

            unknown = sorted(set(targets) - set(cmdb_targets.KEYS))
            if unknown:
                problems.append(f"action.targets: unknown key(s) {', '.join(unknown)} "
                                f"(known: {', '.join(cmdb_targets.KEYS)})")
            problems.extend(f"action.targets: {p}" for p in _refs(targets, used))
            action["targets"] = targets
    elif "targets" in spec:
        problems.append("action.targets: only for fun: state.apply")
    problems.extend(f"action: unknown field {name!r} referenced (the form has: {', '.join(sorted(field_names))})"
                    for name in sorted(used - set(field_names)))
    if check_runner is not None and fun != "state.apply":
        problems.extend(f"action: {p}" for p in check_runner(fun, args, kwargs))
    return action


def check(doc, check_runner=None):
    """The template ``doc`` (YAML text or a mapping), checked and normalised, without the store.

    ``check_runner(fun, args, kwargs)`` lists the problems with a runner call
    (the runner hands in Salt's loader through :mod:`saltops.bridge`).
    """
    if isinstance(doc, str):
        try:
            doc = yaml.safe_load(doc)
        except yaml.YAMLError as err:
            raise ValidationError(f"the template is not valid YAML: {err}") from None
    if not isinstance(doc, dict):
        raise ValidationError("a template is a mapping with name, fields, steps and action")
    problems = [f"{k}: unknown key (known: {', '.join(sorted(_TOP_KEYS))})" for k in doc if k not in _TOP_KEYS]
    name = doc.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        problems.append(f"name: {name!r} is not a valid template name (lower case letters, digits, . _ -)")
    raw_fields = doc.get("fields") or []
    if not isinstance(raw_fields, list):
        problems.append("fields: must be a list of {name, type, ...}")
        raw_fields = []
    fields, seen = [], set()
    for index, spec in enumerate(raw_fields):
        field = _check_field(problems, index, spec, seen)
        if field is not None:
            seen.add(field["name"])
            fields.append(field)
    field_names = {f["name"] for f in fields}
    for field in fields:
        if "default" in field:
            try:
                field["default"] = _value(field, field["default"], None)
            except ValidationError as err:
                problems.append(f"fields.{field['name']}.default: {err}")
    raw_steps = doc.get("steps") or []
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append("steps: a template needs at least one approval step")
        raw_steps = raw_steps if isinstance(raw_steps, list) else []
    steps = [s for s in (_check_step(problems, i, spec, field_names) for i, spec in enumerate(raw_steps)) if s]
    action = _check_action(problems, doc.get("action"), field_names, check_runner)
    if problems:
        raise ValidationError(f"template {name!r} is invalid; nothing was saved", problems)
    return {"name": name, "description": str(doc.get("description") or ""), "fields": fields, "steps": steps,
            "action": action}


def reference_problems(conn, body):
    """Steps naming people, roles or departments the org does not know."""
    problems = []
    for index, step in enumerate(body["steps"]):
        where = f"steps[{index}] ({step['name']})"
        kind, value = step["approver"], step["value"]
        if kind == "user" and not people.exists(conn, value):
            problems.append(f"{where}: unknown user {value!r}")
        elif kind == "role" and not people.role_exists(conn, value):
            problems.append(f"{where}: unknown role {value!r} (no user has it)")
        elif kind == "department_head":
            try:
                if not people.department_head(conn, value):
                    problems.append(f"{where}: department {value!r} has no head")
            except NotFound:
                problems.append(f"{where}: unknown department {value!r}")
    return problems


def save(store, actor, text, now, check_runner=None):
    """Store ``text`` as the next version of its template; ``{name, version, ...}``."""
    body = check(text, check_runner)
    source = text if isinstance(text, str) else yaml.safe_dump(text, sort_keys=False)
    with store.begin() as conn:
        problems = reference_problems(conn, body)
        if problems:
            raise ValidationError(f"template {body['name']!r} is invalid; nothing was saved", problems)
        current = conn.execute(sa.select(sa.func.max(templates.c.version)).where(
            templates.c.name == body["name"])).scalar()
        version = (current or 0) + 1
        conn.execute(templates.insert().values(name=body["name"], version=version, body=body, source=source,
                                               created_by=actor, created_at=now))
        audit.record(conn, actor, "ticket.template_save", "ticket_template", f"{body['name']}:{version}", None, body)
    return {"name": body["name"], "version": version, "fields": [f["name"] for f in body["fields"]],
            "steps": [s["name"] for s in body["steps"]], "action": (body["action"] or {}).get("fun")}


def get(conn, name, version=None):
    """``(version, body, source)`` of a template: its newest version unless one is asked for."""
    query = sa.select(templates.c.version, templates.c.body, templates.c.source).where(templates.c.name == name)
    if version is not None:
        query = query.where(templates.c.version == int(version))
    row = conn.execute(query.order_by(templates.c.version.desc()).limit(1)).first()
    if row is None:
        what = f"version {version} of template {name!r}" if version is not None else f"template {name!r}"
        raise NotFound(f"unknown {what} (see salt-run ticket.templates)")
    return row.version, row.body, row.source


def listing(conn):
    """Every template's newest version, with how many versions it has."""
    query = sa.select(templates.c.name, sa.func.max(templates.c.version).label("version")).group_by(templates.c.name)
    out = []
    for row in conn.execute(query.order_by(templates.c.name)):
        version, body, _ = get(conn, row.name, row.version)
        out.append({"name": row.name, "version": version, "description": body.get("description", ""),
                    "fields": [f["name"] for f in body["fields"]], "action": (body["action"] or {}).get("fun")})
    return out


# --------------------------------------------------------------------------- forms


def _value(field, value, host_exists):
    kind = field["type"]
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not re.fullmatch(r"-?\d+", str(value)):
            raise ValidationError(f"{value!r} is not a whole number")
        value = int(value)
    elif kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            value = value.lower() in ("true", "yes")
        if not isinstance(value, bool):
            raise ValidationError(f"{value!r} is not true or false")
    elif kind == "list":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                                  for v in value):
            raise ValidationError(f"{value!r} is not a list of values")
        value = [str(v) for v in value]
    else:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValidationError(f"{value!r} is not text")
        value = str(value)
    if kind == "choice" and value not in field["choices"]:
        raise ValidationError(f"{value!r} is not one of {', '.join(field['choices'])}")
    if kind == "list" and "choices" in field:
        bad = [v for v in value if v not in field["choices"]]
        if bad:
            raise ValidationError(f"{', '.join(bad)} not among {', '.join(field['choices'])}")
    size = value if kind == "int" else (len(value) if kind in ("str", "host", "list") else None)
    if size is not None:
        if "min" in field and size < field["min"]:
            raise ValidationError(f"{'is less than' if kind == 'int' else 'is shorter than'} {field['min']}")
        if "max" in field and size > field["max"]:
            raise ValidationError(f"{'is more than' if kind == 'int' else 'is longer than'} {field['max']}")
    if "regex" in field:
        for item in value if kind == "list" else [value]:
            if not re.fullmatch(field["regex"], item):
                raise ValidationError(f"{item!r} does not match {field['regex']}")
    if kind == "host" and host_exists is not None and not host_exists(value):
        raise ValidationError(f"host {value!r} is not in the CMDB")
    return value


def validate_form(body, form, host_exists=None):
    """The form's values typed and checked against the template's fields; :class:`ValidationError` lists every problem.

    ``host_exists(hostname)`` answers for ``host`` fields (the CMDB).
    """
    if form is None:
        form = {}
    if not isinstance(form, dict):
        raise ValidationError("the form must be a mapping of field -> value; nothing was changed")
    fields = {f["name"]: f for f in body["fields"]}
    problems = [f"{key}: unknown field (the form has: {', '.join(fields) or 'none'})" for key in form
                if key not in fields]
    out = {}
    for name, field in fields.items():
        value = form.get(name, field.get("default"))
        if value is None or value == "" or value == []:
            if field["required"]:
                problems.append(f"{name}: required")
            out[name] = None
            continue
        try:
            out[name] = _value(field, value, host_exists)
        except ValidationError as err:
            problems.append(f"{name}: {err}")
    if problems:
        raise ValidationError("the form is invalid; nothing was changed", problems)
    return out


def substitute(value, form):
    """``value`` with every ``"{{ form.NAME }}"`` replaced by the form's value (whole values only)."""
    if isinstance(value, str):
        match = _REF.match(value)
        return form.get(match.group(1)) if match else value
    if isinstance(value, list):
        return [substitute(v, form) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, form) for k, v in value.items()}
    return value
