"""
What SaltOps' beacons remember between runs, kept in a file on the minion.

Salt builds a new ``__context__`` for the beacons whenever it reloads them (every
pillar refresh), and a minion restart loses it too: a beacon that reports "back below
the threshold" once must know it was above, after either.  Each beacon keeps one small
JSON document under ``<cachedir>/saltops-beacons/<beacon name>.json`` (mode 0600,
written through a temporary file and a rename).

Self-contained (stdlib + Salt), like every minion-side SaltOps module.
"""

import json
import os
import re
import tempfile

__virtualname__ = "saltops_beaconstate"

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def __virtual__():
    return __virtualname__


def _path(name):
    if not isinstance(name, str) or not _NAME.match(name) or name.startswith("."):
        raise ValueError(f"saltops_beaconstate: {name!r} is not a beacon name")
    return os.path.join(__opts__["cachedir"], "saltops-beacons", name + ".json")  # noqa: F821


def load(name):
    """
    The state the beacon ``name`` saved last, or ``{}``.

    CLI Example:

    .. code-block:: bash

        salt '*' saltops_beaconstate.load saltops_cpu
    """
    try:
        with open(_path(name), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(name, data):
    """
    Keep ``data`` (a JSON-able mapping) as the state of the beacon ``name``.

    CLI Example:

    .. code-block:: bash

        salt '*' saltops_beaconstate.save saltops_cpu '{"above": false}'
    """
    path = _path(name)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return True
