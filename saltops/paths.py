"""Where the shipped Salt trees live.

From a checkout (or an editable install) they are the repository's top-level
folders; from ``pip install .`` they are the copies under ``saltops/_tree``
made by ``setup.py``.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def tree_root() -> Path:
    """The folder that holds ``_runners/``, ``states/``, ``reactor/``... ."""
    installed = PACKAGE_DIR / "_tree"
    if installed.is_dir():
        return installed
    return PACKAGE_DIR.parent


def tree(name: str) -> Path:
    """One shipped tree by name (``states``, ``pillar``, ``reactor``, ``_modules``...)."""
    return tree_root() / name
