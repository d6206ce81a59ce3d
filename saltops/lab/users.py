"""The lab's salt-api users: eauth ``file`` (text, plaintext) with fixed ACLs.

The ACLs are data so that other parts (and the tests) can reuse them; the
passwords are generated when a lab (or a test session) is set up and kept in
its users file, ``name:password`` one per line, readable by its owner only.
"""

import os
import secrets
from pathlib import Path

# User -> Salt eauth ACL.
ACLS = {
    # Everything: minion functions, every runner and wheel function, job lookups.
    "ops": [".*", "@runner", "@wheel", "@jobs"],
    # Read-only CMDB access.
    "viewer": [{"@runner": ["cmdb.list", "cmdb.show", "cmdb.targets", "cmdb.history"]}],
    # Deploy runner functions only (what a CI job hands over).
    "deployer": [{"@runner": ["deploy.*"]}],
}


def generate_passwords(names=None):
    """A fresh random password for every user."""
    return {name: secrets.token_urlsafe(18) for name in (names or ACLS)}


def write_users_file(path, passwords):
    """Write ``name:password`` lines to ``path`` with mode 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        for name, password in passwords.items():
            handle.write(f"{name}:{password}\n")
    os.chmod(path, 0o600)


def read_users_file(path):
    """``{name: password}`` from a users file."""
    out = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip() and ":" in line:
            name, password = line.split(":", 1)
            out[name.strip()] = password.strip()
    return out


def ensure_users_file(path):
    """Keep an existing users file (adding missing users); create it otherwise."""
    path = Path(path)
    current = read_users_file(path) if path.exists() else {}
    missing = [name for name in ACLS if name not in current]
    if missing or not path.exists():
        current.update(generate_passwords(missing))
        write_users_file(path, current)
    return current


def external_auth(users_file, acls=None):
    """Salt's ``external_auth:`` block for eauth ``file`` over ``users_file``."""
    block = {"^filename": str(users_file), "^filetype": "text", "^hashtype": "plaintext"}
    for name, acl in (acls or ACLS).items():
        block[name] = acl
    return {"file": block}
