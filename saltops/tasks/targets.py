"""CMDB targets of a minion task: ``role=web env=prod`` read as filters, resolved when it fires.

The filters are those of :func:`saltops.cmdb.repo.list_hosts` (``role``,
``line``, ``idc``, ``env``, ``status``, ``platform``, ``app``,
``machine_type``, ``owner``) plus ``host`` (hostnames); a value may list
several choices with commas (``role=web,lb``).  Every filter must hold.
"""

from saltops.cmdb import repo
from saltops.errors import ValidationError

KEYS = (*repo.FILTERS, "host")


def parse(spec):
    """``"role=web env=prod"`` or a mapping -> ``{key: [values]}``; :class:`ValidationError` on bad input."""
    if isinstance(spec, dict):
        items = list(spec.items())
    elif isinstance(spec, str) and spec.strip():
        items = []
        for word in spec.split():
            key, sep, value = word.partition("=")
            if not sep:
                raise ValidationError(f"target {word!r} is not key=value (e.g. role=web env=prod)")
            items.append((key, value))
    else:
        raise ValidationError("a minion task needs targets, e.g. targets='role=web env=prod'")
    filters = {}
    for key, value in items:
        key = str(key).strip()
        if key not in KEYS:
            raise ValidationError(f"unknown target key {key!r} (known: {', '.join(KEYS)})")
        values = value if isinstance(value, (list, tuple)) else str(value).split(",")
        values = sorted({str(v).strip() for v in values if str(v).strip()})
        if not values:
            raise ValidationError(f"target {key} has no value")
        filters.setdefault(key, [])
        filters[key] = sorted(set(filters[key]) | set(values))
    return filters


def render(filters):
    """The canonical text of parsed filters (what ``task.list`` shows)."""
    return " ".join(f"{key}={','.join(values)}" for key, values in sorted(filters.items()))


def resolve(conn, filters):
    """The hostnames the filters match now, sorted."""
    query = {k: v for k, v in filters.items() if k != "host"}
    if query:
        names = [rec["hostname"] for rec in repo.list_hosts(conn, **query)]
        if "host" in filters:
            wanted = set(filters["host"])
            names = [n for n in names if n in wanted]
        return names
    return sorted(repo.get_hosts(conn, filters.get("host", [])))
