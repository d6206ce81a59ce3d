# ruff: noqa: F821  (__salt__, __opts__, __pillar__, __context__ are injected by the Salt loader)
"""Install, switch, health-check and roll back application releases on a minion.

Self-contained (stdlib + Salt only): minions do not have the ``saltops``
package; they receive this file through the fileserver (``saltutil.sync_modules``).

Layout under the app's base directory (``<base>/<app>``)::

    releases/<version>/      unpacked artifacts, one folder per version
    current -> releases/<v>  the live release (switched by renaming a temp symlink)
    slots/blue, slots/green  blue/green slots (symlinks into releases/)
    .saltops-release.json    switch history (for rollback) and the active slot
    .cache/                  downloads in progress
    .lock                    serialises calls for one app on this host

The app's settings come from the ``settings`` argument (the master passes the
CMDB record's ``apps:<app>`` entry), falling back to the pillar key
``cmdb:apps:<app>``.  Known keys:

``base`` (``/srv/apps``), ``keep`` (5 releases), ``restart`` / ``reload``
(hook names) or ``service`` (a service unit, ``{slot}`` is replaced) with
``service_action`` (``restart``/``reload``), ``pre_hook`` / ``post_hook``
(hook names, run in the release folder), ``port``, ``health_url`` (a URL or
a path on ``http://127.0.0.1:<port>``; ``{port}``/``{slot}`` are replaced),
``health_expect`` (text the body must contain; ``{version}`` is replaced),
``health_timeout`` (5 s), ``health_retries`` (10), ``health_interval`` (1 s),
``fetch_timeout`` (60 s), ``command_timeout`` (120 s),
``slots`` (``{blue: <port>, green: <port>}``, or ``{blue: {port: ..}, ..}``),
``max_artifact_bytes``, ``max_unpacked_bytes``, ``max_members`` (may only
lower the minion's own limits, below).

Hooks: the CMDB never holds a command.  ``pre_hook``, ``post_hook``,
``restart`` and ``reload`` name a hook that the static pillar declares::

    saltops:
      deploy:
        hooks:
          shop_restart: {cmd: [systemctl, restart, shop], runas: root, timeout: 60}

``cmd`` is an argument vector run without a shell (``python_shell=False``);
``runas`` and ``timeout`` (default ``command_timeout``) are optional.  An
undeclared name, or a setting that is not a name, is refused before anything
changes.

Limits from the minion config (the CMDB may lower them, not raise them):
``saltops_release_max_artifact_bytes`` (2 GiB), ``saltops_release_max_unpacked_bytes``
(8 GiB), ``saltops_release_max_members`` (100000).  ``file://`` URLs and
absolute paths are refused unless ``saltops_release_local_dir`` names a
directory; only files inside it are read.

Commands run with ``cwd`` set to the release folder and these environment
variables: ``SALTOPS_APP``, ``SALTOPS_VERSION``, ``SALTOPS_RELEASE_DIR``,
``SALTOPS_APP_DIR``, ``SALTOPS_SLOT`` (blue/green only) and ``SALTOPS_PORT``.

Every function returns a report: ``result`` (bool), ``comment``, and ``steps``
(one entry per step with its own ``result``, ``comment`` and ``duration``).
"""

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "saltops_release"

# The master's rules (saltops.deploy.rules), copied: minions do not have the
# saltops package.  tests/unit/deploy/test_deploy_contract.py holds them equal.
_APP = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_SLOTS = ("blue", "green")
_HOOK_SETTINGS = ("pre_hook", "post_hook", "restart", "reload")
_HOOK_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_STATE_FILE = ".saltops-release.json"
_MARKER = ".saltops-release"
_CHUNK = 1 << 20

DEFAULTS = {
    "base": "/srv/apps",
    "keep": 5,
    "health_timeout": 5,
    "health_retries": 10,
    "health_interval": 1,
    "fetch_timeout": 60,
    "command_timeout": 120,
    "lock_timeout": 60,
    "service_action": "restart",
}

# Ceilings from the minion config (key: saltops_release_<name>) and their defaults.
LIMITS = {
    "max_artifact_bytes": 2 << 30,
    "max_unpacked_bytes": 8 << 30,
    "max_members": 100000,
}


def __virtual__():
    if not hasattr(os, "symlink") or os.name != "posix":
        return (False, "saltops_release needs a POSIX minion (symlinks, flock)")
    return __virtualname__


# --------------------------------------------------------------------------- helpers


class _Report:
    """Collects the steps of one call."""

    def __init__(self, app, version=None):
        self.data = {"app": app, "version": version, "result": True, "comment": "", "steps": []}

    @contextlib.contextmanager
    def step(self, name):
        entry = {"step": name, "result": True, "comment": ""}
        start = time.monotonic()
        try:
            yield entry
        except _StepFailed as err:
            entry["result"] = False
            entry["comment"] = str(err)
            raise
        finally:
            entry["duration"] = round(time.monotonic() - start, 3)
            self.data["steps"].append(entry)

    def fail(self, comment):
        self.data["result"] = False
        self.data["comment"] = comment
        return self.finish()

    def finish(self):
        if not self.data["result"]:
            # A failed step is a failed job: the salt CLI exits non-zero.
            __context__["retcode"] = 1
        return self.data


class _StepFailed(Exception):
    """A step failed; the message is the step's comment."""


def _check_name(kind, value, pattern):
    if not isinstance(value, str) or not pattern.match(value):
        if kind == "app":
            raise SaltInvocationError(
                f"app {value!r} is not an app name (lowercase letters, digits, _ and -)"
            )
        raise SaltInvocationError(f"{kind} {value!r} is invalid: 1-64 letters, digits, '.', '_', '-', '+'")
    if value in (".", "..") or ".." in value:
        raise SaltInvocationError(f"{kind} {value!r} is invalid: '..' is not allowed")
    return value


def _int(settings, key, minimum=0):
    try:
        value = int(settings[key])
    except (TypeError, ValueError):
        raise SaltInvocationError(f"setting {key!r} must be an integer, got {settings[key]!r}")
    if value < minimum:
        raise SaltInvocationError(f"setting {key!r} must be >= {minimum}, got {value}")
    return value


def _float(settings, key, minimum=0.0):
    try:
        value = float(settings[key])
    except (TypeError, ValueError):
        raise SaltInvocationError(f"setting {key!r} must be a number, got {settings[key]!r}")
    if value < minimum:
        raise SaltInvocationError(f"setting {key!r} must be >= {minimum}, got {value}")
    return value


def _settings(app, settings=None, settings_by_host=None):
    """The app's settings: defaults < pillar ``cmdb:apps:<app>`` < ``settings``.

    ``settings_by_host`` (``{minion id: settings}``) lets one publication carry
    the settings of many hosts that differ: this minion takes its own entry.
    """
    if settings_by_host is not None:
        if not isinstance(settings_by_host, dict):
            raise SaltInvocationError("settings_by_host must map minion ids to settings")
        minion_id = __opts__.get("id")
        if minion_id not in settings_by_host:
            raise SaltInvocationError(f"settings_by_host has no entry for this minion ({minion_id})")
        settings = settings_by_host[minion_id]
    merged = dict(DEFAULTS)
    base = __opts__.get("saltops_release_base")
    if base:
        merged["base"] = base
    pillar_apps = ((__pillar__.get("cmdb") or {}).get("apps") or {}) if __pillar__ else {}
    from_pillar = pillar_apps.get(app) if isinstance(pillar_apps, dict) else None
    if isinstance(from_pillar, dict):
        merged.update(from_pillar)
    if settings is not None:
        if isinstance(settings, str):
            try:
                settings = json.loads(settings)
            except ValueError:
                raise SaltInvocationError("settings must be a mapping (or a JSON object)")
        if not isinstance(settings, dict):
            raise SaltInvocationError("settings must be a mapping (or a JSON object)")
        merged.update(settings)
    if not isinstance(merged["base"], str) or not os.path.isabs(merged["base"]):
        raise SaltInvocationError(f"setting 'base' must be an absolute path, got {merged['base']!r}")
    for key in ("keep",):
        merged[key] = _int(merged, key, minimum=1)
    for key in ("health_retries",):
        merged[key] = _int(merged, key, minimum=1)
    for key in ("health_timeout", "health_interval", "fetch_timeout", "command_timeout", "lock_timeout"):
        merged[key] = _float(merged, key)
    if merged["service_action"] not in ("restart", "reload"):
        raise SaltInvocationError("setting 'service_action' must be 'restart' or 'reload'")
    for key, default in LIMITS.items():
        ceiling = _int({key: __opts__.get(f"saltops_release_{key}", default)}, key, minimum=1)
        merged[key] = min(ceiling, _int(merged, key, minimum=1)) if merged.get(key) is not None else ceiling
    merged["hooks"] = {key: _hook(key, merged[key]) for key in _HOOK_SETTINGS if merged.get(key)}
    return merged


def _declared_hooks():
    """The hooks the static pillar declares (``saltops:deploy:hooks``)."""
    hooks = (((__pillar__ or {}).get("saltops") or {}).get("deploy") or {}).get("hooks") or {}
    if not isinstance(hooks, dict):
        raise SaltInvocationError("pillar saltops:deploy:hooks must map hook names to {cmd: [...]}")
    return hooks


def _hook(setting, name):
    """The declared hook that setting ``setting`` names: ``{name, cmd, runas, timeout}``.

    A CMDB value is only ever a name: a command written there is refused, so
    that write access to the CMDB does not run code on the app hosts.
    """
    if not isinstance(name, str) or not _HOOK_NAME.match(name):
        excerpt = name[:24] + "..." if isinstance(name, str) and len(name) > 24 else name
        raise SaltInvocationError(
            f"setting {setting!r} must name a hook declared in the pillar saltops:deploy:hooks "
            f"(lowercase letters, digits, _ and -), not a command; got {excerpt!r}"
        )
    declared = _declared_hooks()
    spec = declared.get(name)
    if spec is None:
        raise SaltInvocationError(
            f"setting {setting!r} names the hook {name!r}, which the pillar saltops:deploy:hooks "
            f"of this minion does not declare (declared: {', '.join(sorted(declared)) or 'none'})"
        )
    argv = spec.get("cmd") if isinstance(spec, dict) else None
    if (
        not isinstance(argv, list)
        or not argv
        or not all(isinstance(arg, str) and arg and "\0" not in arg for arg in argv)
    ):
        raise SaltInvocationError(
            f"pillar saltops:deploy:hooks:{name}: cmd must be a non-empty list of arguments "
            "(run without a shell)"
        )
    runas = spec.get("runas")
    if runas is not None and (not isinstance(runas, str) or not runas):
        raise SaltInvocationError(f"pillar saltops:deploy:hooks:{name}: runas must be a user name")
    timeout = spec.get("timeout")
    if timeout is not None:
        timeout = _float({"timeout": timeout}, "timeout", minimum=1)
    return {"name": name, "cmd": [str(arg) for arg in argv], "runas": runas, "timeout": timeout}


def _app_dir(app, conf):
    return os.path.join(conf["base"], app)


def _release_dir(app, version, conf):
    return os.path.join(_app_dir(app, conf), "releases", version)


@contextlib.contextmanager
def _app_lock(app, conf):
    app_dir = _app_dir(app, conf)
    os.makedirs(app_dir, exist_ok=True)
    deadline = time.monotonic() + conf["lock_timeout"]
    with open(os.path.join(app_dir, ".lock"), "a+") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise CommandExecutionError(
                        f"another saltops_release call holds {app_dir}/.lock for more than "
                        f"{conf['lock_timeout']:.0f} s; wait for it to finish"
                    )
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_state(app_dir):
    try:
        with open(os.path.join(app_dir, _STATE_FILE), encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        data = {}
    except ValueError:
        log.warning("saltops_release: %s/%s is not valid JSON; starting afresh", app_dir, _STATE_FILE)
        data = {}
    data.setdefault("history", [])
    data.setdefault("active_slot", None)
    return data


def _write_state(app_dir, data):
    path = os.path.join(app_dir, _STATE_FILE)
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=app_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _link_version(path):
    """The release version a symlink points at (``None`` if absent)."""
    try:
        target = os.readlink(path)
    except OSError:
        return None
    target = os.path.normpath(os.path.join(os.path.dirname(path), target))
    if os.path.basename(os.path.dirname(target)) == "releases":
        return os.path.basename(target)
    # ``current`` may point at a slot during blue/green.
    return _link_version(target) if os.path.islink(target) else None


def _atomic_symlink(target, link):
    """Point ``link`` at ``target`` by renaming a fresh symlink over it (atomic)."""
    tmp = f"{link}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    if os.path.isdir(link) and not os.path.islink(link):
        os.unlink(tmp)
        raise _StepFailed(f"{link} is a real directory, not a symlink; move it away first")
    os.replace(tmp, link)


def _releases(app_dir):
    root = os.path.join(app_dir, "releases")
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        path = os.path.join(root, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        out.append((os.path.getmtime(path), name))
    return [name for _, name in sorted(out)]


def _release_marker(path):
    try:
        with open(os.path.join(path, _MARKER), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _env(app, version, conf, release_dir, slot=None, port=None):
    env = {
        "SALTOPS_APP": app,
        "SALTOPS_VERSION": version or "",
        "SALTOPS_RELEASE_DIR": release_dir,
        "SALTOPS_APP_DIR": _app_dir(app, conf),
        "SALTOPS_SLOT": slot or "",
        "SALTOPS_PORT": "" if port is None else str(port),
    }
    return env


def _run(entry, setting, cwd, env, conf):
    """Run the declared hook that ``setting`` names, without a shell; raise _StepFailed on a non-zero exit."""
    hook = conf["hooks"][setting]
    kwargs = {"runas": hook["runas"]} if hook["runas"] else {}
    ret = __salt__["cmd.run_all"](
        hook["cmd"],
        cwd=cwd,
        env=env,
        python_shell=False,
        timeout=hook["timeout"] or conf["command_timeout"],
        ignore_retcode=True,
        output_loglevel="debug",
        **kwargs,
    )
    out = (ret.get("stdout") or "")[-2000:]
    err = (ret.get("stderr") or "")[-2000:]
    entry["hook"] = hook["name"]
    entry["retcode"] = ret.get("retcode")
    if out:
        entry["stdout"] = out
    if err:
        entry["stderr"] = err
    if ret.get("retcode") != 0:
        raise _StepFailed(
            f"hook {hook['name']} exited with {ret.get('retcode')}: {(err or out).strip()[-500:]}"
        )
    entry["comment"] = f"hook {hook['name']} succeeded"


# --------------------------------------------------------------------------- fetch + unpack


def _fetch(entry, artifact, sha256, dest_dir, conf, saltenv):
    """Download ``artifact`` into ``dest_dir`` while hashing; return the file path."""
    os.makedirs(dest_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="download-", dir=dest_dir)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            if artifact.startswith("salt://"):
                cached = __salt__["cp.cache_file"](artifact, saltenv=saltenv)
                if not cached:
                    raise _StepFailed(f"{artifact} is not on the master's fileserver (saltenv {saltenv})")
                source = open(cached, "rb")  # noqa: SIM115 - closed below
                stream = source
            elif artifact.startswith(("http://", "https://")):
                timeout = conf["fetch_timeout"]
                request = urllib.request.Request(artifact, headers={"User-Agent": "saltops-release"})
                try:
                    source = urllib.request.urlopen(request, timeout=timeout)
                except urllib.error.HTTPError as err:
                    raise _StepFailed(f"download of {artifact} failed: HTTP {err.code} {err.reason}")
                except (urllib.error.URLError, OSError) as err:
                    reason = getattr(err, "reason", err)
                    if isinstance(reason, TimeoutError):
                        raise _StepFailed(f"download of {artifact} timed out after {timeout:.0f} s")
                    raise _StepFailed(f"download of {artifact} failed: {reason}")
                stream = source
            elif artifact.startswith(("file://", "/")):
                try:
                    source = open(_local_artifact(artifact), "rb")  # noqa: SIM115 - closed below
                except OSError as err:
                    raise _StepFailed(f"cannot read {artifact}: {err.strerror}")
                stream = source
            else:
                raise _StepFailed(f"unsupported artifact URL {artifact!r}")
            cap = conf["max_artifact_bytes"]
            declared = _declared_length(source)
            if declared is not None and declared > cap:
                source.close()
                raise _StepFailed(
                    f"{artifact} is {declared} bytes, more than max_artifact_bytes ({cap}); nothing was written"
                )
            deadline = time.monotonic() + conf["fetch_timeout"]
            try:
                while True:
                    try:
                        chunk = stream.read(_CHUNK)
                    except TimeoutError:
                        raise _StepFailed(
                            f"download of {artifact} timed out after {conf['fetch_timeout']:.0f} s"
                        )
                    except OSError as err:
                        raise _StepFailed(f"download of {artifact} failed: {err}")
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > cap:
                        raise _StepFailed(
                            f"download of {artifact} passed max_artifact_bytes ({cap}); stopped and removed"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                    if time.monotonic() > deadline:
                        raise _StepFailed(
                            f"download of {artifact} took longer than {conf['fetch_timeout']:.0f} s"
                        )
            finally:
                source.close()
        got = digest.hexdigest()
        if got != sha256.lower():
            raise _StepFailed(
                f"checksum mismatch for {artifact}: expected sha256 {sha256.lower()}, got {got}"
            )
        entry["bytes"] = size
        entry["comment"] = f"fetched {size} bytes, sha256 verified"
        return tmp
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _declared_length(source):
    """The size a download announces (HTTP Content-Length) or a local file has, else ``None``."""
    headers = getattr(source, "headers", None)
    if headers is not None:
        try:
            return int(headers.get("Content-Length"))
        except (TypeError, ValueError):
            return None
    try:
        return os.fstat(source.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return None


def _local_artifact(artifact):
    """The path of a ``file://`` or absolute artifact inside ``saltops_release_local_dir``.

    Refused without that minion setting: the artifact argument reaches the
    minion from whoever may publish a job, and must not read any file of it.
    """
    root = __opts__.get("saltops_release_local_dir")
    if not root:
        raise _StepFailed(
            f"local artifacts ({artifact!r}) are refused: use an http(s):// or salt:// URL, or set "
            "saltops_release_local_dir in the minion config to allow one directory"
        )
    root = os.path.realpath(root)
    path = os.path.realpath(artifact.removeprefix("file://"))
    if not path.startswith(root + os.sep):
        raise _StepFailed(f"local artifact {artifact!r} is outside saltops_release_local_dir ({root})")
    return path


def _check_tar_members(archive, dest, conf):
    """Refuse an archive unless every member is a plain file, folder or link inside ``dest``.

    Done here as well as by the ``data`` filter: that filter can be bypassed on
    some Python patch releases (CVE-2025-4517), and it does not bound sizes.
    """
    total = 0
    links = set()
    for count, member in enumerate(archive, start=1):
        if count > conf["max_members"]:
            raise _StepFailed(f"the archive holds more than max_members ({conf['max_members']}) entries")
        name = member.name
        parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
        if name.startswith(("/", "\\")) or ".." in parts:
            raise _StepFailed(f"archive member {name!r} has an absolute path or '..'")
        if any("/".join(parts[:i]) in links for i in range(1, len(parts))):
            raise _StepFailed(f"archive member {name!r} is written through a link of the archive")
        if member.isdev() or member.ischr() or member.isblk() or member.isfifo():
            raise _StepFailed(f"archive member {name!r} is a device or fifo")
        if member.issym() or member.islnk():
            target = member.linkname
            if target.startswith("/") or not target:
                raise _StepFailed(f"archive member {name!r} links to the absolute path {target!r}")
            # A symlink is relative to its folder, a hard link to the archive's root.
            base = os.path.dirname("/".join(parts)) if member.issym() else ""
            resolved = os.path.normpath(os.path.join(dest, base, target))
            root = os.path.normpath(dest)
            if resolved != root and not resolved.startswith(root + os.sep):
                raise _StepFailed(f"archive member {name!r} links outside the release folder ({target!r})")
            links.add("/".join(parts))
        elif not (member.isfile() or member.isdir()):
            raise _StepFailed(f"archive member {name!r} is not a file, folder or link")
        total += max(member.size, 0)
        if total > conf["max_unpacked_bytes"]:
            raise _StepFailed(
                f"the archive unpacks to more than max_unpacked_bytes ({conf['max_unpacked_bytes']})"
            )


def _check_zip_members(archive, conf):
    infos = archive.infolist()
    if len(infos) > conf["max_members"]:
        raise _StepFailed(f"the archive holds more than max_members ({conf['max_members']}) entries")
    if sum(info.file_size for info in infos) > conf["max_unpacked_bytes"]:
        raise _StepFailed(
            f"the archive unpacks to more than max_unpacked_bytes ({conf['max_unpacked_bytes']})"
        )


def _refuse_unsafe(check, *args):
    try:
        check(*args)
    except _StepFailed as err:
        raise _StepFailed(f"cannot unpack the artifact: {err}; nothing was unpacked") from None


def _safe_members_zip(archive, dest):
    dest = os.path.realpath(dest)
    for name in archive.namelist():
        target = os.path.realpath(os.path.join(dest, name))
        if not (target == dest or target.startswith(dest + os.sep)):
            raise _StepFailed(f"archive member {name!r} would be written outside the release folder")


def _unpack(entry, path, dest, conf):
    """Unpack a tar (any compression) or zip file into the new folder ``dest``."""
    os.makedirs(dest)
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            try:
                _refuse_unsafe(_check_tar_members, archive, dest, conf)
                # The 'data' filter refuses absolute paths, '..', devices and links
                # that point outside the folder (checked above as well).
                archive.extractall(dest, filter="data")
            except (tarfile.FilterError, tarfile.TarError, OSError) as err:
                raise _StepFailed(f"cannot unpack the artifact: {err}")
        kind = "tar"
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            _refuse_unsafe(_check_zip_members, archive, conf)
            _safe_members_zip(archive, dest)
            try:
                archive.extractall(dest)
            except (zipfile.BadZipFile, OSError) as err:
                raise _StepFailed(f"cannot unpack the artifact: {err}")
        kind = "zip"
    else:
        raise _StepFailed("the artifact is neither a tar archive nor a zip file")
    # An archive holding one top folder (shop-1.4.2/...) is unpacked without it.
    names = os.listdir(dest)
    if (
        len(names) == 1
        and os.path.isdir(os.path.join(dest, names[0]))
        and not os.path.islink(os.path.join(dest, names[0]))
    ):
        top = os.path.join(dest, names[0])
        for name in os.listdir(top):
            os.rename(os.path.join(top, name), os.path.join(dest, name))
        os.rmdir(top)
    entry["comment"] = f"unpacked {kind} archive"


# --------------------------------------------------------------------------- steps


def _health_url(conf, port, slot):
    url = conf.get("health_url")
    if not url:
        return None
    if port is None:
        port = conf.get("port")
    url = str(url).replace("{port}", str(port)).replace("{slot}", slot or "")
    if url.startswith("/"):
        if port in (None, ""):
            raise SaltInvocationError("health_url is a path but no 'port' is set for the app")
        url = f"http://127.0.0.1:{port}{url}"
    if not url.startswith(("http://", "https://")):
        raise SaltInvocationError(f"health_url must be an http(s) URL or a path, got {url!r}")
    return url


def _probe(entry, conf, version, port=None, slot=None):
    url = _health_url(conf, port, slot)
    if not url:
        entry["comment"] = "no health_url configured; not probed"
        entry["skipped"] = True
        return
    expect = conf.get("health_expect")
    if expect:
        expect = str(expect).replace("{version}", version or "")
    last = ""
    retries = conf["health_retries"]
    for attempt in range(1, retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=conf["health_timeout"]) as resp:
                body = resp.read(65536).decode("utf-8", "replace")
                status = resp.status
            if 200 <= status < 400 and (not expect or expect in body):
                entry["attempts"] = attempt
                entry["url"] = url
                entry["comment"] = f"{url} answered {status} after {attempt} attempt(s)"
                return
            last = f"HTTP {status}" + (f", body lacks {expect!r}" if expect and expect not in body else "")
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code}"
        except (urllib.error.URLError, OSError) as err:
            last = str(getattr(err, "reason", err))
        if attempt < retries:
            time.sleep(conf["health_interval"])
    entry["attempts"] = retries
    entry["url"] = url
    raise _StepFailed(f"health check {url} failed after {retries} attempt(s): {last}")


def _restart(entry, app, version, conf, release_dir, slot=None, port=None):
    env = _env(app, version, conf, release_dir, slot, port)
    hook = "reload" if conf["service_action"] == "reload" and conf.get("reload") else None
    hook = hook or ("restart" if conf.get("restart") else None)
    if hook:
        _run(entry, hook, release_dir, env, conf)
        return
    unit = conf.get("service")
    if unit:
        unit = str(unit).replace("{slot}", slot or "")
        fun = "service." + conf["service_action"]
        if fun not in __salt__:
            raise _StepFailed(f"{fun} is not available on this minion")
        ok = __salt__[fun](unit)
        if ok is not True:
            raise _StepFailed(f"{fun} {unit} failed: {ok}")
        entry["comment"] = f"{conf['service_action']}ed service {unit}"
        return
    entry["comment"] = "no restart, reload or service configured; nothing restarted"
    entry["skipped"] = True


def _prune(entry, app_dir, keep, protect):
    kept = []
    removed = []
    names = _releases(app_dir)
    # Newest last; keep the newest ``keep`` plus whatever a link points at.
    for index, name in enumerate(names):
        if name in protect or index >= len(names) - keep:
            kept.append(name)
            continue
        shutil.rmtree(os.path.join(app_dir, "releases", name), ignore_errors=True)
        removed.append(name)
    entry["removed"] = removed
    entry["comment"] = f"kept {len(kept)} release(s), removed {len(removed)}"
    return removed


def _protected(app_dir):
    protect = set()
    for link in ["current"] + [os.path.join("slots", s) for s in _SLOTS]:
        version = _link_version(os.path.join(app_dir, link))
        if version:
            protect.add(version)
    return protect


def _stage(report, app, version, artifact, sha256, conf, saltenv):
    app_dir = _app_dir(app, conf)
    dest = _release_dir(app, version, conf)
    report.data["current"] = _link_version(os.path.join(app_dir, "current"))
    with report.step("fetch") as entry:
        marker = _release_marker(dest) if os.path.isdir(dest) else None
        if marker and marker.get("sha256") == sha256.lower():
            entry["comment"] = f"release {version} already staged with this checksum"
            entry["cached"] = True
            report.data["staged"] = "cached"
            return dest
        if os.path.isdir(dest):
            if marker:
                raise _StepFailed(
                    f"release {version} is already on disk with sha256 {marker.get('sha256')}; "
                    "a version must not change its content (bump the version)"
                )
            # A folder without marker is a leftover of a failed unpack: replace it.
            shutil.rmtree(dest)
        path = _fetch(entry, artifact, sha256, os.path.join(app_dir, ".cache"), conf, saltenv)
    with report.step("unpack") as entry:
        tmp_dest = os.path.join(app_dir, "releases", f".staging-{version}-{os.getpid()}")
        shutil.rmtree(tmp_dest, ignore_errors=True)
        try:
            _unpack(entry, path, tmp_dest, conf)
            with open(os.path.join(tmp_dest, _MARKER), "w", encoding="utf-8") as fh:
                json.dump({"sha256": sha256.lower(), "artifact": artifact, "staged_at": time.time()}, fh)
            os.rename(tmp_dest, dest)
        except BaseException:
            shutil.rmtree(tmp_dest, ignore_errors=True)
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    report.data["staged"] = "fetched"
    return dest


def _switch(report, app, version, conf, reason, slot=None):
    """pre_hook, current -> releases/<version>, restart, health, post_hook, prune.

    With ``slot`` (an app whose balancers send traffic to a blue/green slot),
    the release goes into that slot instead: ``slots/<slot>`` -> the release,
    ``current`` -> ``slots/<slot>``, and the slot's instance restarts on the
    slot's port.
    """
    app_dir = _app_dir(app, conf)
    dest = _release_dir(app, version, conf)
    if not os.path.isdir(dest):
        raise _StepFailed(f"release {version} is not on disk at {dest}; stage it first")
    port = _slot_port(conf, slot) if slot else conf.get("port")
    state = _read_state(app_dir)
    current = _link_version(os.path.join(app_dir, "current"))
    report.data["previous"] = current
    if slot:
        report.data["slot"] = slot
    env = _env(app, version, conf, dest, slot, port)
    if conf.get("pre_hook"):
        with report.step("pre_hook") as entry:
            _run(entry, "pre_hook", dest, env, conf)
    with report.step("switch") as entry:
        if slot:
            os.makedirs(os.path.join(app_dir, "slots"), exist_ok=True)
            _atomic_symlink(os.path.join("..", "releases", version), os.path.join(app_dir, "slots", slot))
            _atomic_symlink(os.path.join("slots", slot), os.path.join(app_dir, "current"))
        else:
            _atomic_symlink(os.path.join("releases", version), os.path.join(app_dir, "current"))
        state["history"].append({"version": version, "ts": time.time(), "reason": reason})
        state["history"] = state["history"][-50:]
        state["active_slot"] = slot
        _write_state(app_dir, state)
        where = f" (slot {slot})" if slot else ""
        entry["comment"] = f"current: {current or '(none)'} -> {version}{where}"
    with report.step("restart") as entry:
        _restart(entry, app, version, conf, dest, slot=slot, port=port)
    with report.step("health") as entry:
        _probe(entry, conf, version, port=port, slot=slot)
    if conf.get("post_hook"):
        with report.step("post_hook") as entry:
            _run(entry, "post_hook", dest, env, conf)
    with report.step("prune") as entry:
        _prune(entry, app_dir, conf["keep"], _protected(app_dir) | {version, current} - {None})


def _slot_port(conf, slot):
    """The port of ``slot``: ``slots: {blue: 8001, ..}`` or ``slots: {blue: {port: 8001}, ..}``."""
    slots = conf.get("slots") or {}
    value = slots.get(slot) if isinstance(slots, dict) else None
    if isinstance(value, dict):
        value = value.get("port")
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise SaltInvocationError(
            f"blue/green needs the setting slots: {{blue: <port>, green: <port>}}; "
            f"slot {slot!r} has no port (got {slots!r})"
        )
    return int(value)


def _check_slot(slot):
    if slot not in _SLOTS:
        raise SaltInvocationError(f"slot must be one of {', '.join(_SLOTS)}, got {slot!r}")
    return slot


def _common(app, version=None):
    _check_name("app", app, _APP)
    if version is not None:
        _check_name("version", str(version), _VERSION)
        version = str(version)
    return version


# --------------------------------------------------------------------------- public


def stage(app, version, artifact, sha256, settings=None, saltenv="base", settings_by_host=None):
    """
    Fetch an artifact, verify its sha256 and unpack it into ``releases/<version>``.

    Nothing live changes. A release already staged with the same checksum is
    not fetched again; a different checksum for a staged version is refused.

    CLI Example:

    .. code-block:: bash

        salt web01 saltops_release.stage shop 1.4.2 https://ci.example.com/shop-1.4.2.tar.gz <sha256>
        salt web01 saltops_release.stage shop 1.4.2 salt://artifacts/shop-1.4.2.tar.gz <sha256>
    """
    version = _common(app, version)
    if not isinstance(artifact, str) or not artifact:
        raise SaltInvocationError(
            "artifact must be an http(s):// or salt:// URL (file:// and absolute paths only inside "
            "saltops_release_local_dir)"
        )
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise SaltInvocationError("sha256 must be 64 hexadecimal characters")
    conf = _settings(app, settings, settings_by_host)
    report = _Report(app, version)
    try:
        with _app_lock(app, conf):
            _stage(report, app, version, artifact, sha256, conf, saltenv)
    except _StepFailed as err:
        return report.fail(str(err))
    report.data["comment"] = f"release {version} staged"
    return report.finish()


def switch(app, version, settings=None, reason="deploy", slot=None, settings_by_host=None):
    """
    Make a staged release live: pre_hook, atomic ``current`` switch, restart,
    health probe, post_hook, then prune to the last ``keep`` releases.

    ``previous`` in the report is the version that was live before.  With
    ``slot`` (blue/green apps, for a rolling deploy into the live slot) the
    release replaces the one in that slot and restarts that slot's instance.

    CLI Example:

    .. code-block:: bash

        salt web01 saltops_release.switch shop 1.4.2
        salt web01 saltops_release.switch shop 1.4.3 slot=green
    """
    version = _common(app, version)
    slot = _check_slot(slot) if slot is not None else None
    conf = _settings(app, settings, settings_by_host)
    report = _Report(app, version)
    try:
        with _app_lock(app, conf):
            _switch(report, app, version, conf, reason, slot)
    except _StepFailed as err:
        return report.fail(str(err))
    report.data["comment"] = f"release {version} is live"
    return report.finish()


def deploy(app, version, artifact, sha256, settings=None, saltenv="base"):
    """
    Stage and switch in one call (what a plain ``salt --batch-size`` run uses).

    CLI Example:

    .. code-block:: bash

        salt -b 2 'web*' saltops_release.deploy shop 1.4.2 https://ci.example.com/shop-1.4.2.tar.gz <sha256>
    """
    version = _common(app, version)
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise SaltInvocationError("sha256 must be 64 hexadecimal characters")
    conf = _settings(app, settings)
    report = _Report(app, version)
    try:
        with _app_lock(app, conf):
            _stage(report, app, version, artifact, sha256, conf, saltenv)
            _switch(report, app, version, conf, "deploy")
    except _StepFailed as err:
        return report.fail(str(err))
    report.data["comment"] = f"release {version} is live"
    return report.finish()


def rollback(app, to=None, settings=None, slot=None, settings_by_host=None):
    """
    Switch back to an earlier release that is still on disk.

    Without ``to``, the release that was live before the current one.  With
    ``slot``, the release goes back into that blue/green slot.

    CLI Example:

    .. code-block:: bash

        salt web01 saltops_release.rollback shop
        salt web01 saltops_release.rollback shop to=1.4.1
    """
    _check_name("app", app, _APP)
    slot = _check_slot(slot) if slot is not None else None
    conf = _settings(app, settings, settings_by_host)
    app_dir = _app_dir(app, conf)
    report = _Report(app, None)
    try:
        with _app_lock(app, conf):
            current = _link_version(os.path.join(app_dir, "current"))
            on_disk = set(_releases(app_dir))
            if to is None:
                state = _read_state(app_dir)
                target = None
                for item in reversed(state["history"]):
                    if item["version"] != current and item["version"] in on_disk:
                        target = item["version"]
                        break
                if target is None:
                    return report.fail(
                        f"no earlier release of {app} is on disk to roll back to "
                        f"(on disk: {', '.join(sorted(on_disk)) or 'none'})"
                    )
            else:
                target = _check_name("version", str(to), _VERSION)
                if target not in on_disk:
                    return report.fail(
                        f"release {target} of {app} is not on disk "
                        f"(on disk: {', '.join(sorted(on_disk)) or 'none'}); stage it again first"
                    )
            report.data["version"] = target
            _switch(report, app, target, conf, "rollback", slot)
    except _StepFailed as err:
        return report.fail(str(err))
    report.data["comment"] = f"rolled back to {target}"
    return report.finish()


def install_slot(app, version, slot, settings=None, settings_by_host=None):
    """
    Blue/green: point ``slots/<slot>`` at a staged release, restart that slot's
    service and health-check it on the slot's port. The live slot is untouched.

    CLI Example:

    .. code-block:: bash

        salt web01 saltops_release.install_slot shop 1.4.2 green
    """
    version = _common(app, version)
    slot = _check_slot(slot)
    conf = _settings(app, settings, settings_by_host)
    port = _slot_port(conf, slot)
    app_dir = _app_dir(app, conf)
    dest = _release_dir(app, version, conf)
    report = _Report(app, version)
    report.data["slot"] = slot
    try:
        with _app_lock(app, conf):
            if not os.path.isdir(dest):
                return report.fail(f"release {version} is not on disk at {dest}; stage it first")
            state = _read_state(app_dir)
            if state.get("active_slot") == slot:
                return report.fail(f"slot {slot} is the live slot; install into the idle slot")
            report.data["previous"] = _link_version(os.path.join(app_dir, "slots", slot))
            env = _env(app, version, conf, dest, slot, port)
            if conf.get("pre_hook"):
                with report.step("pre_hook") as entry:
                    _run(entry, "pre_hook", dest, env, conf)
            with report.step("switch") as entry:
                os.makedirs(os.path.join(app_dir, "slots"), exist_ok=True)
                _atomic_symlink(os.path.join("..", "releases", version), os.path.join(app_dir, "slots", slot))
                entry["comment"] = f"slot {slot} -> {version}"
            with report.step("restart") as entry:
                _restart(entry, app, version, conf, dest, slot=slot, port=port)
            with report.step("health") as entry:
                _probe(entry, conf, version, port=port, slot=slot)
            if conf.get("post_hook"):
                with report.step("post_hook") as entry:
                    _run(entry, "post_hook", dest, env, conf)
    except _StepFailed as err:
        return report.fail(str(err))
    report.data["comment"] = f"release {version} runs in slot {slot}"
    return report.finish()


def set_active(app, slot, settings=None, settings_by_host=None):
    """
    Blue/green: make ``slot`` the live one on this host (``current`` ->
    ``slots/<slot>``, atomic). No restart: both slots keep running.

    CLI Example:

    .. code-block:: bash

        salt web01 saltops_release.set_active shop green
    """
    _check_name("app", app, _APP)
    slot = _check_slot(slot)
    conf = _settings(app, settings, settings_by_host)
    app_dir = _app_dir(app, conf)
    report = _Report(app, None)
    report.data["slot"] = slot
    try:
        with _app_lock(app, conf):
            version = _link_version(os.path.join(app_dir, "slots", slot))
            if not version:
                return report.fail(f"slot {slot} of {app} holds no release; install_slot first")
            report.data["version"] = version
            state = _read_state(app_dir)
            report.data["previous_slot"] = state.get("active_slot")
            with report.step("switch") as entry:
                _atomic_symlink(os.path.join("slots", slot), os.path.join(app_dir, "current"))
                state["active_slot"] = slot
                state["history"].append({"version": version, "ts": time.time(), "reason": f"slot {slot}"})
                state["history"] = state["history"][-50:]
                _write_state(app_dir, state)
                entry["comment"] = (
                    f"live slot: {report.data['previous_slot'] or '(none)'} -> {slot} ({version})"
                )
            with report.step("prune") as entry:
                _prune(entry, app_dir, conf["keep"], _protected(app_dir))
    except _StepFailed as err:
        return report.fail(str(err))
    report.data["comment"] = f"slot {slot} ({version}) is live"
    return report.finish()


def health(app, version=None, slot=None, settings=None, settings_by_host=None):
    """
    Probe the app's health URL (with the configured timeout and retries).

    ``live`` in the report is the release ``current`` (or the slot) points at.

    CLI Example:

    .. code-block:: bash

        salt web01 saltops_release.health shop
        salt web01 saltops_release.health shop slot=green
    """
    version = _common(app, version)
    conf = _settings(app, settings, settings_by_host)
    port = None
    if slot is not None:
        port = _slot_port(conf, _check_slot(slot))
    link = (
        os.path.join(_app_dir(app, conf), "slots", slot)
        if slot
        else os.path.join(_app_dir(app, conf), "current")
    )
    live = _link_version(link)
    if version is None:
        version = live
    report = _Report(app, version)
    # What the link points at: the master compares it with what it expects.
    report.data["live"] = live
    try:
        with report.step("health") as entry:
            _probe(entry, conf, version, port=port, slot=slot)
    except _StepFailed as err:
        return report.fail(str(err))
    report.data["comment"] = "healthy"
    return report.finish()


def status(app, settings=None):
    """
    What is live, what is on disk, the slots and the switch history.

    CLI Example:

    .. code-block:: bash

        salt web01 saltops_release.status shop
    """
    _check_name("app", app, _APP)
    conf = _settings(app, settings)
    app_dir = _app_dir(app, conf)
    state = _read_state(app_dir)
    return {
        "app": app,
        "app_dir": app_dir,
        "current": _link_version(os.path.join(app_dir, "current")),
        "releases": _releases(app_dir),
        "slots": {s: _link_version(os.path.join(app_dir, "slots", s)) for s in _SLOTS},
        "active_slot": state.get("active_slot"),
        "history": state["history"][-10:],
    }


def prune(app, keep=None, settings=None):
    """
    Remove old releases, keeping the newest ``keep`` and every linked one.

    CLI Example:

    .. code-block:: bash

        salt web01 saltops_release.prune shop keep=3
    """
    _check_name("app", app, _APP)
    extra = dict(settings or {}) if isinstance(settings, dict) else settings
    conf = _settings(app, extra)
    if keep is not None:
        conf["keep"] = _int({"keep": keep}, "keep", minimum=1)
    app_dir = _app_dir(app, conf)
    report = _Report(app, None)
    with _app_lock(app, conf), report.step("prune") as entry:
        _prune(entry, app_dir, conf["keep"], _protected(app_dir))
    report.data["comment"] = report.data["steps"][-1]["comment"]
    return report.finish()
