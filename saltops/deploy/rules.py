"""What a deploy request and an app's settings may hold: the rules master and minion share.

The minion module (``_modules/saltops_release.py``) cannot import this package,
so it keeps its own copy of these rules; ``tests/unit/deploy/test_deploy_contract.py``
holds the two equal.  App names and hook settings are the CMDB's
(:mod:`saltops.cmdb.model`): a name the CMDB accepts is one a deploy accepts.
"""

import re

from saltops.cmdb.model import APP_NAME, HOOK_NAME, HOOK_SETTINGS

__all__ = [
    "APP_NAME",
    "ARTIFACT",
    "HOOK_NAME",
    "HOOK_SETTINGS",
    "MAX_ARTIFACT_URL",
    "SHA256",
    "SLOTS",
    "VERSION",
    "version_problem",
]

VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# The master sends only network artifacts; a minion refuses local paths unless
# its own config names a local artifact directory.
ARTIFACT = re.compile(r"^(https?://|salt://)\S+$")
MAX_ARTIFACT_URL = 1024
SLOTS = ("blue", "green")


def version_problem(version):
    """Why ``version`` cannot name a release folder, or ``None``."""
    if not isinstance(version, str) or not VERSION.match(version) or ".." in version:
        return f"version {version!r} is invalid: 1-64 letters, digits, '.', '_', '-', '+'"
    return None
