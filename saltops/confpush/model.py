"""What a config set is, and the checks a set passes before it is stored.

A set belongs to an app and an env and holds files (target path, owner,
group, mode, a Jinja template, a validator command, the service action after
a change), the values its templates see, the roots it may write under and an
optional health check.  Every problem found is listed in one
:class:`ValidationError`; nothing is stored when there is one.
"""

import posixpath
import re

from saltops.errors import ValidationError

ACTIONS = ("none", "reload", "restart")

# Paths a set never writes unless the master config lists them in
# saltops:confpush:allowed_system_paths: what a broken or hostile file there
# would do to the host (logins, boot, libraries, Salt itself) is out of an
# app's reach.
SYSTEM_PATHS = (
    "/bin",
    "/boot",
    "/dev",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/root",
    "/var/lib",
    "/etc/ssh",
    "/etc/pam.d",
    "/etc/security",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/gshadow",
    "/etc/fstab",
    "/etc/systemd",
    "/etc/cron.d",
    "/etc/crontab",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/salt",
)

_APP = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_PATH = re.compile(r"^/[A-Za-z0-9_.+@:/-]+$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_MODE = re.compile(r"^0?[0-7]{3}$")
_SERVICE = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")
_VALUE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Secret references, resolved on the minion: sdb://<profile>/<key> or pillar:<key:path>.
SDB_REF = re.compile(r"^sdb://[A-Za-z0-9_.-]+/[A-Za-z0-9_./:-]+$")
PILLAR_REF = re.compile(r"^pillar:[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)*$")
# A value under such a name must be a reference, never the secret itself.
_SECRET_NAME = re.compile(r"(pass(word|wd)?|secret|token|api_?key|private_?key|credential)", re.IGNORECASE)
# Text a config file may hold: printable characters, tabs and line breaks.
_BINARY = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
FILE_KEYS = (
    "path",
    "template",
    "user",
    "group",
    "mode",
    "validator",
    "action",
    "service",
    "reload_cmd",
    "tmp_dir",
)
SET_KEYS = ("files", "values", "roots", "health_cmd", "comment")


def is_secret_ref(value):
    return isinstance(value, str) and bool(SDB_REF.match(value) or PILLAR_REF.match(value))


def check_name(kind, value):
    if not isinstance(value, str) or not _APP.match(value):
        raise ValidationError(
            f"{kind} {value!r} is invalid: lower-case letters, digits, '_', '.', '-', at most 64"
        )
    return value


def under(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def _system_problem(path, allowed):
    if any(under(path, a) for a in allowed):
        return None
    for sys_path in SYSTEM_PATHS:
        if under(path, sys_path) or under(sys_path, path):
            return (
                f"{path} is a system path ({sys_path}); list it in "
                "saltops:confpush:allowed_system_paths to let sets write there"
            )
    return None


# Stands for the host's name in a file's path (a per-host file on shared storage, several
# hosts on one machine): replaced at render time by the CMDB hostname.
HOST_MARK = "{hostname}"


def _check_path(path, label):
    if not isinstance(path, str) or not path:
        return f"{label}: a path is required"
    path = path.replace(HOST_MARK, "host")
    if not path.startswith("/"):
        return f"{label}: {path!r} must be absolute"
    if ".." in path.split("/"):
        return f"{label}: {path!r} may not contain '..'"
    if len(path) > 255:
        return f"{label}: {path!r} is longer than 255 characters"
    if not _PATH.match(path) or posixpath.normpath(path) != path:
        return f"{label}: {path!r} is not a plain normalised path (letters, digits, _ . + @ : - and /)"
    return None


def _check_roots(roots, allowed, problems):
    if not isinstance(roots, list) or not roots:
        problems.append("roots: list the directories the set may write under (e.g. [/etc/shop])")
        return []
    good = []
    for root in roots:
        problem = _check_path(root, "roots")
        if problem is None and HOST_MARK in root:
            problem = f"roots: {root!r} may not contain {HOST_MARK}"
        if problem is None and root.count("/") < 2:
            problem = f"roots: {root!r} is too wide; name the app's own directory (e.g. /etc/shop)"
        if problem is None:
            problem = _system_problem(root, allowed)
        if problem:
            problems.append(problem)
        else:
            good.append(root)
    return good


def _check_file(index, item, roots, limits, problems):
    label = f"files[{index}]"
    if not isinstance(item, dict):
        problems.append(f"{label} must be a mapping")
        return
    path = item.get("path")
    label = f"files[{index}] ({path})" if isinstance(path, str) else label
    unknown = sorted(set(item) - set(FILE_KEYS))
    if unknown:
        problems.append(f"{label}: unknown key(s) {', '.join(unknown)} (known: {', '.join(FILE_KEYS)})")
    problem = _check_path(path, label)
    if problem:
        problems.append(problem)
    elif roots and not any(under(path, r) and path != r for r in roots):
        problems.append(f"{label}: outside the set's roots ({', '.join(roots)})")
    template = item.get("template")
    if not isinstance(template, str):
        problems.append(f"{label}: template must be text")
    else:
        size = len(template.encode("utf-8", "surrogatepass"))
        if size > limits["max_file_bytes"]:
            problems.append(
                f"{label}: template is {size} bytes, more than max_file_bytes ({limits['max_file_bytes']})"
            )
        if _BINARY.search(template):
            problems.append(f"{label}: binary content (control bytes); only text files are pushed")
    for key, pattern in (("user", _USER), ("group", _USER), ("mode", _MODE)):
        value = item.get(key)
        if value is not None and not (isinstance(value, str) and pattern.match(value)):
            problems.append(f"{label}: {key} {value!r} is invalid")
    for key in ("validator", "reload_cmd"):
        value = item.get(key)
        if value is not None and (
            not isinstance(value, str) or not value.strip() or "\n" in value or len(value) > 1024
        ):
            problems.append(f"{label}: {key} must be one command line (at most 1024 characters)")
    if item.get("tmp_dir") is not None and _check_path(item.get("tmp_dir"), label):
        problems.append(f"{label}: tmp_dir must be an absolute normalised path")
    action = item.get("action", "none")
    if action not in ACTIONS:
        problems.append(f"{label}: action {action!r} must be one of {', '.join(ACTIONS)}")
    elif action != "none" and not (isinstance(item.get("service"), str) and _SERVICE.match(item["service"])):
        problems.append(f"{label}: action {action} needs the service name (service: nginx)")


def _check_values(values, problems):
    if not isinstance(values, dict):
        problems.append("values must be a mapping")
        return
    for key, value in values.items():
        if not isinstance(key, str) or not _VALUE_KEY.match(key):
            problems.append(f"values: key {key!r} must be an identifier")
            continue
        if isinstance(value, str) and value.startswith(("sdb://", "pillar:")):
            if not is_secret_ref(value):
                problems.append(
                    f"values.{key}: {value!r} is not a valid sdb://profile/key or pillar:key reference"
                )
        elif _SECRET_NAME.search(key) and value not in (None, ""):
            problems.append(
                f"values.{key}: looks like a secret; store a reference (sdb://profile/key or pillar:key), "
                "never the secret itself"
            )


def normalise(spec, limits):
    """A checked copy of a set's ``spec`` (``files``, ``values``, ``roots``, ``health_cmd``, ``comment``)."""
    if not isinstance(spec, dict):
        raise ValidationError("a config set must be a mapping")
    problems = []
    unknown = sorted(set(spec) - set(SET_KEYS))
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(SET_KEYS)})")
    roots = _check_roots(spec.get("roots"), limits.get("allowed_system_paths") or [], problems)
    files = spec.get("files")
    if not isinstance(files, list) or not files:
        problems.append("files: a set needs at least one file")
        files = []
    if len(files) > limits["max_files"]:
        problems.append(f"files: {len(files)} files, more than max_files ({limits['max_files']})")
    for index, item in enumerate(files):
        _check_file(index, item, roots, limits, problems)
    paths = [f.get("path") for f in files if isinstance(f, dict)]
    dupes = sorted({p for p in paths if isinstance(p, str) and paths.count(p) > 1})
    if dupes:
        problems.append(f"files: listed twice: {', '.join(dupes)}")
    total = sum(
        len(f.get("template", "").encode("utf-8", "surrogatepass"))
        for f in files
        if isinstance(f, dict) and isinstance(f.get("template"), str)
    )
    if total > limits["max_set_bytes"]:
        problems.append(
            f"the set's templates are {total} bytes, more than max_set_bytes ({limits['max_set_bytes']})"
        )
    values = spec.get("values") or {}
    _check_values(values, problems)
    health = spec.get("health_cmd")
    if health is not None and (not isinstance(health, str) or not health.strip() or "\n" in health):
        problems.append("health_cmd must be one command line")
    comment = spec.get("comment") or ""
    if not isinstance(comment, str) or len(comment) > 500:
        problems.append("comment must be text of at most 500 characters")
    if problems:
        raise ValidationError("invalid config set; nothing was changed", problems)
    return {
        "roots": list(roots),
        "files": [
            {
                "path": f["path"],
                "template": f["template"],
                "user": f.get("user"),
                "group": f.get("group"),
                "mode": f.get("mode"),
                "validator": f.get("validator"),
                "action": f.get("action", "none"),
                "service": f.get("service"),
                "reload_cmd": f.get("reload_cmd"),
                "tmp_dir": f.get("tmp_dir"),
            }
            for f in files
        ],
        "values": dict(values),
        "health_cmd": health,
        "comment": comment,
    }
