"""Who is acting.

Through salt-api it is the authenticated eauth user (Salt's ``__user__``);
from the CLI, the OS user (the sudo user where set); from the reactor,
``Reactor``.  A name passed as a function argument is never trusted.
"""

import getpass
import os
import re

_VALID = re.compile(r"^[\w.@+-]{1,128}$")


def acting_user(salt_user=None):
    """Resolve the acting user from Salt's ``__user__`` (or the OS when absent)."""
    user = salt_user
    if not user or user in ("root", "salt", "UNKNOWN"):
        # Salt reports 'root' for a CLI call made with sudo; the sudo user is the person.
        user = os.environ.get("SUDO_USER") or user or getpass.getuser()
    user = str(user)
    if not _VALID.match(user):
        user = re.sub(r"[^\w.@+-]", "_", user)[:128] or "unknown"
    return user
