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
    sudo_user = os.environ.get("SUDO_USER")
    if user and sudo_user and str(user) == f"sudo_{sudo_user}":
        # salt-run under sudo: Salt's CLI names the caller "sudo_<SUDO_USER>" (salt.utils.user.get_specific_user).
        user = sudo_user
    if user == "UNKNOWN":
        # Salt's placeholder for a call that named nobody (RunnerClient.low without a
        # user, in the master's own process): the person is the OS user running it.
        user = None
    if not user or user in ("root", "salt"):
        # Salt reports 'root' for a CLI call made with sudo; the sudo user is the person.
        user = os.environ.get("SUDO_USER") or user or getpass.getuser()
    user = str(user)
    if not _VALID.match(user):
        user = re.sub(r"[^\w.@+-]", "_", user)[:128] or "unknown"
    return user
