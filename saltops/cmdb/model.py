"""Host records and their validation.

A host record is a plain dict with the fields of the CMDB contract
(``docs/pillar.md``).  :func:`validate_host` checks every field and reports
every problem at once, so an import can list all bad rows with their reasons.
"""

import ipaddress
import math
import re
import unicodedata

from saltops.errors import ValidationError

STATUSES = ("online", "maintenance", "offline", "decommissioned")

FIELDS = (
    "hostname",
    "ip",
    "lines",
    "roles",
    "platform",
    "machine_type",
    "idc",
    "env",
    "status",
    "owner",
    "apps",
)
REQUIRED = ("hostname", "ip", "roles", "platform", "machine_type", "idc", "env", "owner")

# RFC 1123 labels: letters, digits and inner hyphens, 1-63 each, 253 in all.
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_PLATFORM = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
# App names (also the minion module's, held equal by tests/unit/deploy/test_deploy_contract.py).
APP_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
# App settings that make an app host run a command: each names a hook declared
# in the static pillar (``saltops:deploy:hooks:<name>``), never a command, so
# that write access to the CMDB is not a shell on the app hosts.
HOOK_SETTINGS = ("pre_hook", "post_hook", "restart", "reload")
HOOK_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_SETTING_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
# Owners are people or teams: letters of any script, digits and . _ - @ + and inner spaces.
_OWNER = re.compile(r"^[\w.@+-]+( [\w.@+-]+)*$")
_MAX_SETTINGS_BYTES = 16 * 1024
# An app's settings nest at most this deep and hold at most this many values
# (16 KiB of JSON holds fewer); both are checked before anything walks them.
MAX_SETTINGS_DEPTH = 32
_MAX_SETTINGS_VALUES = 16 * 1024
# Characters of a rejected value an error message shows (an import file may be
# something else than hosts: its cells are not echoed whole).
EXCERPT_CHARS = 24


def excerpt(value, limit=EXCERPT_CHARS):
    """A rejected value as an error message shows it: quoted, escaped, at most ``limit`` characters.

    ``repr`` escapes control characters; longer text is cut and says how long
    it was, so an error never carries a whole line of whatever was imported.
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value)} characters)"
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        # repr of a huge int is slow (and refused past 4300 digits): size it by its bits.
        return repr(value) if value.bit_length() <= 64 else f"a {value.bit_length()}-bit number"
    return f"a {type(value).__name__}"


class Rules:
    """The configurable sets a host is validated against (``saltops:cmdb``)."""

    def __init__(self, lines, roles, idcs, envs, machine_types):
        self.lines = frozenset(lines)
        self.roles = frozenset(roles)
        self.idcs = frozenset(idcs)
        self.envs = frozenset(envs)
        self.machine_types = frozenset(machine_types)

    @classmethod
    def from_config(cls, conf):
        cmdb = conf["cmdb"]
        return cls(cmdb["lines"], cmdb["roles"], cmdb["idcs"], cmdb["envs"], cmdb["machine_types"])


def _text(value):
    return value if isinstance(value, str) else None


def check_hostname(value):
    """Return the normalised hostname or raise ``ValueError`` saying why not."""
    if not isinstance(value, str) or not value:
        raise ValueError("hostname is required")
    name = value.strip().lower().rstrip(".")
    if len(name) > 253:
        raise ValueError(f"hostname {excerpt(value)} is longer than 253 characters")
    if not name.isascii():
        raise ValueError(f"hostname {excerpt(value)} is not ASCII (RFC 1123)")
    for label in name.split("."):
        if not _LABEL.match(label):
            raise ValueError(f"hostname {excerpt(value)} is not a valid RFC 1123 name (label {excerpt(label)})")
    return name


def check_ip(value, what="ip"):
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} is required")
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"{what} {excerpt(value)} is not an IP address") from None


def _too_big(settings):
    """Why ``settings`` is too deep or holds too many values to walk, or ``None``.

    Iterative and bounded: it stops at the first limit, so a structure built
    from shared references (YAML aliases, a parsed argument) or one that
    contains itself costs at most ``_MAX_SETTINGS_VALUES`` steps.
    """
    stack = [(settings, 1)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > _MAX_SETTINGS_VALUES:
            return f"more than {_MAX_SETTINGS_VALUES} values"
        if depth > MAX_SETTINGS_DEPTH:
            return f"nested deeper than {MAX_SETTINGS_DEPTH} levels"
        if isinstance(value, dict):
            stack.extend((inner, depth + 1) for inner in value.values())
        elif isinstance(value, list):
            stack.extend((inner, depth + 1) for inner in value)
    return None


def _check_settings(app, settings, problems):
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        problems.append(f"apps.{app}: settings must be a mapping, not {type(settings).__name__}")
        return {}
    too_big = _too_big(settings)
    if too_big:
        problems.append(f"apps.{app}: settings {too_big}")
        return {}

    def walk(value, path):
        if isinstance(value, dict):
            for key, inner in value.items():
                if not isinstance(key, str) or not _SETTING_KEY.match(key):
                    problems.append(f"{path}: invalid setting name {excerpt(key)}")
                else:
                    walk(inner, f"{path}.{key}")
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                walk(inner, f"{path}[{i}]")
        elif isinstance(value, str):
            if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in value):
                problems.append(f"{path}: control characters (other than newline and tab) are not allowed")
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{path}: {value!r} is not a finite number (JSON cannot hold it)")
        elif value is not None and not isinstance(value, (bool, int, float)):
            problems.append(f"{path}: unsupported value type {type(value).__name__}")

    walk(settings, f"apps.{app}")
    for key in HOOK_SETTINGS:
        value = settings.get(key)
        if value is not None and not (isinstance(value, str) and HOOK_NAME.match(value)):
            problems.append(
                f"apps.{app}.{key}: must name a hook declared in the pillar saltops:deploy:hooks "
                f"(lowercase letters, digits, _ and -), not a command; got {excerpt(value)}"
            )
    if len(repr(settings)) > _MAX_SETTINGS_BYTES:
        problems.append(f"apps.{app}: settings larger than {_MAX_SETTINGS_BYTES} bytes")
    return settings


def validate_host(data, rules):
    """Validate a full host record and return it normalised.

    Raises :class:`ValidationError` listing every problem found.
    """
    problems = []
    if not isinstance(data, dict):
        raise ValidationError("a host record must be a mapping", [f"got {type(data).__name__}"])
    unknown = sorted(str(k) for k in set(data) - set(FIELDS) - {"version"})
    if unknown:
        problems.append(f"unknown field(s): {', '.join(excerpt(str(k)) for k in unknown[:10])}")
    for field in REQUIRED:
        if data.get(field) in (None, "", [], {}):
            problems.append(f"{field} is required")
    out = {}
    try:
        out["hostname"] = check_hostname(data.get("hostname"))
    except ValueError as err:
        problems.append(str(err))
    if data.get("ip"):
        try:
            out["ip"] = check_ip(data.get("ip"))
        except ValueError as err:
            problems.append(str(err))

    lines = data.get("lines") or {}
    out["lines"] = {}
    if not isinstance(lines, dict):
        problems.append("lines must map a line name to an address")
    else:
        for line, address in lines.items():
            if not isinstance(line, str) or line not in rules.lines:
                problems.append(f"unknown line {excerpt(line)} (known: {', '.join(sorted(rules.lines))})")
                continue
            try:
                out["lines"][line] = check_ip(address, f"lines.{line}")
            except ValueError as err:
                problems.append(str(err))

    roles = data.get("roles") or []
    if isinstance(roles, str):
        roles = [r.strip() for r in roles.split(",") if r.strip()]
    if not isinstance(roles, list):
        problems.append("roles must be a list")
        roles = []
    for role in roles:
        if not isinstance(role, str) or role not in rules.roles:
            problems.append(f"unknown role {excerpt(role)} (known: {', '.join(sorted(rules.roles))})")
    out["roles"] = sorted({r for r in roles if isinstance(r, str)})

    platform = _text(data.get("platform"))
    if data.get("platform") and not (platform and _PLATFORM.match(platform)):
        problems.append(f"platform {excerpt(data.get('platform'))} is not a platform name like 'Debian-12'")
    out["platform"] = platform

    for field, allowed in (("machine_type", rules.machine_types), ("idc", rules.idcs), ("env", rules.envs)):
        value = data.get(field)
        if value in (None, ""):
            continue
        if not isinstance(value, str) or value not in allowed:
            problems.append(f"unknown {field} {excerpt(value)} (known: {', '.join(sorted(allowed))})")
        out[field] = value

    status = data.get("status") or "online"
    if not isinstance(status, str) or status not in STATUSES:
        problems.append(f"status {excerpt(status)} is not one of {', '.join(STATUSES)}")
    out["status"] = status

    owner = data.get("owner")
    if owner not in (None, ""):
        if not isinstance(owner, str) or len(owner) > 128 or not _OWNER.match(owner):
            problems.append(
                f"owner {excerpt(owner)} must be a person or team name (letters, digits, . _ - @ +, single spaces)"
            )
        out["owner"] = owner

    apps = data.get("apps") or {}
    out["apps"] = {}
    if not isinstance(apps, dict):
        problems.append("apps must map an app name to its settings")
    else:
        for app, settings in apps.items():
            if not isinstance(app, str) or not APP_NAME.match(app):
                problems.append(f"invalid app name {excerpt(app)} (lowercase letters, digits, _ and -)")
                continue
            out["apps"][app] = _check_settings(app, settings, problems)

    if problems:
        problems = list(dict.fromkeys(problems))
        name = excerpt(data.get("hostname")) if isinstance(data.get("hostname"), str) else "'?'"
        raise ValidationError(f"invalid host record {name}", problems)
    return out


def merge_update(current, changes):
    """Apply an update to a current record: top-level fields are replaced.

    ``apps`` and ``lines`` are replaced whole too, so that removing an app is
    possible; callers that want to add one pass the full mapping.
    """
    if not isinstance(changes, dict):
        raise ValidationError("an update must be a mapping of fields")
    if "hostname" in changes and changes["hostname"] != current["hostname"]:
        raise ValidationError("the hostname of a host cannot be changed; remove and add it instead")
    merged = {k: v for k, v in current.items() if k in FIELDS}
    merged.update(changes)
    return merged
