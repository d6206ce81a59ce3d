"""A set as a directory a team can keep in git: ``confpush.yml`` plus one file per template.

Layout::

    confpush.yml          # roots, values, health_cmd, comment, files: [{path, source, ...}]
    files/etc/shop/app.json

``source`` is the template's path relative to the directory.  Reading refuses
sources outside the directory (``..``, symlinks out), binary and oversized
files; writing refuses to overwrite a directory that is not empty.
"""

import os
from pathlib import Path

import yaml

from saltops.errors import ValidationError

MANIFEST = "confpush.yml"


def _inside(base, candidate):
    try:
        candidate.relative_to(base)
        return True
    except ValueError:
        return False


def read(directory, limits):
    """The set spec held in ``directory`` (not yet checked by :func:`saltops.confpush.model.normalise`)."""
    base = Path(directory)
    if not base.is_dir():
        raise ValidationError(f"{directory} is not a directory on the master")
    base = base.resolve()
    manifest = base / MANIFEST
    if not manifest.is_file():
        raise ValidationError(f"{directory} has no {MANIFEST}")
    try:
        data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValidationError(f"{manifest} is not valid YAML: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise ValidationError(f"{manifest} must be a mapping with a files: list")
    problems, files = [], []
    for index, item in enumerate(data["files"]):
        if not isinstance(item, dict) or not isinstance(item.get("source"), str):
            problems.append(f"files[{index}]: needs source: <file relative to {MANIFEST}>")
            continue
        entry = {k: v for k, v in item.items() if k != "source"}
        source = (base / item["source"]).resolve()
        if not _inside(base, source):
            problems.append(f"files[{index}]: source {item['source']!r} is outside {directory}")
            continue
        if not source.is_file():
            problems.append(f"files[{index}]: source {item['source']!r} does not exist")
            continue
        size = source.stat().st_size
        if size > limits["max_file_bytes"]:
            problems.append(
                f"files[{index}]: {item['source']} is {size} bytes, more than {limits['max_file_bytes']}"
            )
            continue
        raw = source.read_bytes()
        try:
            entry["template"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"files[{index}]: {item['source']} is binary (not UTF-8 text)")
            continue
        files.append(entry)
    if problems:
        raise ValidationError(f"cannot import {directory}; nothing was changed", problems)
    spec = {k: v for k, v in data.items() if k not in ("files", "app", "env", "version")}
    spec["files"] = files
    return spec


def write(directory, app, env, version, spec):
    """Write ``spec`` into ``directory`` (created; must be empty or absent). Returns the files written."""
    base = Path(directory)
    if base.exists() and (not base.is_dir() or any(base.iterdir())):
        raise ValidationError(f"{directory} exists and is not an empty directory; nothing was written")
    written = []
    manifest = {"app": app, "env": env, "version": version}
    manifest.update({k: spec[k] for k in ("roots", "values", "health_cmd", "comment") if spec.get(k)})
    manifest["files"] = []
    for item in spec["files"]:
        source = "files" + item["path"]
        target = base / source
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(item["template"], encoding="utf-8")
        written.append(str(target))
        entry = {"path": item["path"], "source": source}
        entry.update(
            {k: v for k, v in item.items() if k not in ("path", "template") and v not in (None, "none")}
        )
        manifest["files"].append(entry)
    base.mkdir(parents=True, exist_ok=True)
    (base / MANIFEST).write_text(
        yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False), encoding="utf-8"
    )
    written.append(str(base / MANIFEST))
    os.chmod(base / MANIFEST, 0o644)
    return written
