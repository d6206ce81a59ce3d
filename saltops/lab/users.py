"""The lab's salt-api users: eauth ``file`` (text, plaintext) with fixed ACLs.

The ACLs are data so that other parts (and the tests) can reuse them; the
passwords are generated when a lab (or a test session) is set up and kept in
its users file, ``name:password`` one per line, readable by its owner only.
"""

import os
import re
import secrets
from pathlib import Path


def exactly(*funs):
    """ACL entries that match these function names and nothing else.

    Salt compares a function with each entry by ``re.match(entry, fun)``
    (``salt.utils.minions.CkMinions.match_check``): a regular expression
    anchored at the start only, so ``cmdb.list`` would also admit
    ``cmdb.list_anything`` and ``cmdbXlist``.  Escaping the dots and ending in
    ``$`` leaves the one name.
    """
    return [re.escape(fun) + "$" for fun in funs]


# The jobs runner functions a salt-api web client reads: the job list and one
# job (salt-api's GET /jobs and /jobs/<jid>), a job's returns by id (results of
# asynchronous calls) and the jobs still running.
JOB_READ = exactly("jobs.list_jobs", "jobs.list_job", "jobs.lookup_jid", "jobs.active")

# The other read-only pages of a salt-api web client (checked against SaltGUI
# 1.34.0, docs/lab.md): the minion list (the key list, connected minions, their
# grains and Salt versions), keys with fingerprints, grains, the pillar's shape
# (``pillar.obfuscate``: keys and types, never values), schedules and beacons.
# Not granted: ``pillar.items`` and the ``cache.pillar`` runner (pillar values),
# ``config.values`` (the master's configuration, ``saltops:db_url`` included).
PAGE_READ_RUNNERS = exactly("manage.versions")
PAGE_READ = [
    {
        "*": exactly(
            "grains.items", "pillar.obfuscate", "schedule.list", "beacons.list", "beacons.list_available"
        )
    },
    {"@wheel": exactly("key.list_all", "key.finger", "minions.connected")},
]

# User -> Salt eauth ACL.
ACLS = {
    # Everything: minion functions, every runner and wheel function, job lookups.
    "ops": [".*", "@runner", "@wheel", "@jobs"],
    # Read-only CMDB access, config push diffs, history and status (docs/confpush.md), and
    # the read-only pages of a web client.
    "viewer": [
        {
            "@runner": [
                *exactly("cmdb.list", "cmdb.show", "cmdb.targets", "cmdb.history"),
                r"confpush\.(diff|history|status)$",
                *JOB_READ,
                *PAGE_READ_RUNNERS,
            ]
        },
        *PAGE_READ,
    ],
    # Every deploy runner function (what a CI job hands over), and the read-only pages.
    "deployer": [{"@runner": [r"deploy\..*", *JOB_READ, *PAGE_READ_RUNNERS]}, *PAGE_READ],
    # People of the ticket tour (saltops.lab.tickets): an applicant, and their manager who approves.
    # Who may act on which ticket is the tickets' own decision; these say which calls reach it.
    "dev": [{"@runner": exactly("ticket.create", "ticket.show", "ticket.list", "ticket.cancel",
                                "ticket.resubmit", "ticket.rate", "ticket.comment", "ticket.templates",
                                "deploy.status")}],
    "lead": [{"@runner": exactly("ticket.show", "ticket.list", "ticket.approve", "ticket.reject",
                                 "ticket.return", "ticket.comment", "ticket.delegate", "ticket.templates",
                                 "deploy.status")}],
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
