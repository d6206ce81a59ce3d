"""The Salt high data a push, a diff or a restore runs on one host (``state.high``).

Everything on the minion is Salt's own states: ``file.managed`` writes each
file (``contents`` rendered on the master, ``check_cmd`` validating the new
file before it replaces anything, ``backup: minion``, ``show_changes`` off
for files that hold secrets), a ``cmd.run`` keeps each file it replaces
beside it (``<path>.confpush-prev``, ``cp -p``) so a failed check can put
it back,
``module.run`` of ``service.reload``/``service.restart`` and ``cmd.run``
(reload command, health check) run only ``onchanges``.
"""

from saltops.confpush import render

PREV_SUFFIX = ".confpush-prev"
_SLS = "confpush"


def _state(fun, args, order):
    mod, _, name = fun.partition(".")
    return {mod: [*args, {"order": order}, name], "__sls__": _SLS, "__env__": "base"}


def _file_args(item, rendered, test):
    args = [{"name": rendered["path"]}, {"makedirs": True}, {"follow_symlinks": False}, {"allow_empty": True}]
    if rendered["secrets"]:
        # Only the secrets are rendered on the minion; the diff would show them.
        args += [{"contents": render.minion_template(rendered["text"], rendered["secrets"])}]
        args += [{"template": "jinja"}, {"show_changes": False}]
    else:
        args += [{"contents": rendered["text"]}, {"show_changes": True}]
    for key in ("user", "group", "mode", "tmp_dir"):
        if item.get(key):
            args.append({key: item[key]})
    if not test:
        args.append({"backup": "minion"})
        if item.get("validator"):
            args.append({"check_cmd": item["validator"]})
    return args


def _by_path(spec, hostname):
    """The set's files by their path on ``hostname``."""
    return {render.host_path(item["path"], hostname): item for item in spec["files"]}


def file_id(index):
    return f"confpush-file-{index}"


def check_high(spec, files, hostname):
    """Test-mode high data: what ``file.managed`` would change (diff, drift)."""
    items = _by_path(spec, hostname)
    return {
        file_id(i): _state("file.managed", _file_args(items[f["path"]], f, test=True), 10 + i)
        for i, f in enumerate(files)
    }


def _services(spec, changed, order, hostname):
    """Reload/restart states and reload commands, each after a change of its files.

    ``changed`` lists ``((state module, state id), path)``: a state and a path it changes.
    """
    high, by_service = {}, {}
    items = _by_path(spec, hostname)
    for req, path in changed:
        item = items[path]
        if item["action"] != "none":
            by_service.setdefault((item["action"], item["service"]), []).append(req)
        if item.get("reload_cmd"):
            by_service.setdefault(("cmd", render.host_path(item["reload_cmd"], hostname)), []).append(req)
    for n, ((action, target), reqs) in enumerate(sorted(by_service.items())):
        onchanges = [{"onchanges": [{mod: sid} for mod, sid in dict.fromkeys(reqs)]}]
        if action == "cmd":
            high[f"confpush-reload-cmd-{n}"] = _state("cmd.run", [{"name": target}, *onchanges], order + n)
        else:
            high[f"confpush-{action}-{target}"] = _state(
                "module.run", [{f"service.{action}": [{"name": target}]}, *onchanges], order + n
            )
    return high


def _keep_previous(paths):
    """One shell command keeping each file beside itself as ``<path>.confpush-prev`` (none if absent).

    One ``cmd.run`` rather than ``file.copy`` with an ``onlyif`` per file: an
    ``onlyif`` costs seconds on a minion (measured ~3 s for the first one of a
    job), a plain command tens of milliseconds.  Paths are checked
    (:mod:`saltops.confpush.model`) to hold no character the shell reads.
    """
    steps = [
        f"rm -f {p}{PREV_SUFFIX} && {{ if [ -f {p} ]; then cp -p {p} {p}{PREV_SUFFIX}; fi; }}" for p in paths
    ]
    return " && ".join(steps)


def _put_back(paths):
    steps = [
        f"{{ if [ -f {p}{PREV_SUFFIX} ]; then cp -p {p}{PREV_SUFFIX} {p}; else rm -f {p}; fi; }}"
        for p in paths
    ]
    return " && ".join(steps)


def push_high(spec, files, hostname):
    """The high data that writes ``files`` on a host, then reloads and checks it."""
    items = _by_path(spec, hostname)
    high = {
        "confpush-keep-previous": _state("cmd.run", [{"name": _keep_previous(f["path"] for f in files)}], 100)
    }
    managed = []
    for i, f in enumerate(files):
        high[file_id(i)] = _state("file.managed", _file_args(items[f["path"]], f, test=False), 101 + i)
        managed.append((("file", file_id(i)), f["path"]))
    high.update(_services(spec, managed, 1000, hostname))
    if spec.get("health_cmd"):
        high["confpush-health"] = _state(
            "cmd.run",
            [
                {"name": render.host_path(spec["health_cmd"], hostname)},
                {"onchanges": [{"file": sid} for (_, sid), _ in managed]},
            ],
            2000,
        )
    return high


def restore_high(spec, changed_paths, hostname):
    """Put back the files a failed push changed on a host (or remove the ones it created), then reload."""
    paths = sorted(changed_paths)
    high = {"confpush-restore": _state("cmd.run", [{"name": _put_back(paths)}], 100)}
    high.update(_services(spec, [(("cmd", "confpush-restore"), p) for p in paths], 1000, hostname))
    return high
