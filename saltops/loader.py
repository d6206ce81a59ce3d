"""The ``salt.loader`` entry point.

Salt calls :func:`loader_dirs` while it builds each loader and looks up the
key for the kind it is loading, so a stock master finds our runners, engines,
execution modules and the CMDB external pillar with no copying and no
``saltutil.sync_*``.
"""

from saltops.paths import tree

# Salt's loader kind -> our folder.  ``modules`` is listed so that runners on the
# master may call them too; minions get them through the fileserver
# (``salt://_modules``), because they do not have this package installed.
_KINDS = {
    "runners": "_runners",
    "modules": "_modules",
    "engines": "_engines",
    "pillar": "_pillar",
    "output": "_output",
}


def loader_dirs():
    """Return ``{loader kind: [directories]}`` for the kinds SaltOps extends."""
    return {kind: [str(tree(folder))] for kind, folder in _KINDS.items() if tree(folder).is_dir()}
