"""People and templates the ticket tests share, and a store emptied of tickets and people.

``ORG``: departments ops (head olga) and dev (head dan); olga and oscar have the
role ``ops``; alice and bob are in dev with dan as their manager; carol has no
manager.  ``MAINT``: a host-maintenance template whose action is ``cmdb.update``:
the applicant's manager approves, and for ``env == prod`` every ``ops`` member
countersigns.
"""

import json
import os

import sqlalchemy as sa

from saltops.org.schema import delegates, departments, user_roles, users
from saltops.tickets.schema import actions, approvals, templates, tickets, transitions

ORG = """
departments:
  ops: {head: olga}
  dev: {head: dan}
users:
  olga: {department: ops, roles: [ops]}
  oscar: {department: ops, roles: [ops]}
  dan: {department: dev}
  alice: {department: dev, manager: dan, email: alice@example.com}
  bob: {department: dev, manager: dan}
  carol: {department: dev}
"""

MAINT = """
name: maint
description: Put a host in maintenance
fields:
  - {name: host, type: host, required: true}
  - {name: env, type: choice, choices: [dev, prod], required: true}
  - {name: reason, type: str, min: 3, max: 200}
steps:
  - {name: lead, manager: true}
  - {name: ops, role: ops, mode: all, when: "env == prod"}
action:
  fun: cmdb.update
  args: ["{{ form.host }}"]
  kwargs: {status: maintenance}
"""

TABLES = (transitions, actions, approvals, tickets, templates, delegates, user_roles, users, departments)


def empty(store):
    """Remove every ticket, template and person (the CMDB stays)."""
    with store.begin() as conn:
        for table in TABLES:
            conn.execute(sa.delete(table))


def salt_run_as(cli, user, fun, *args, ok=True, **kwargs):
    """``salt-run`` through ``cli`` as ``user`` (given the way sudo gives it: the runner kit reads SUDO_USER);
    with ``ok``, the call must have succeeded."""
    words = [*args, *(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in kwargs.items())]
    ret = cli.run(fun, *words, env={**os.environ, "SUDO_USER": user})
    if ok:
        assert ret.returncode == 0, ret
    return ret


class Executor:
    """Stands in for Salt in unit tests: records each call; fails while ``failing`` is set."""

    def __init__(self):
        self.calls = []
        self.failing = False

    def __call__(self, call):
        self.calls.append(call)
        if self.failing:
            return {"ok": False, "retcode": 1, "output": "the runner refused: host is locked"}
        return {"ok": True, "retcode": 0, "output": f"{call['fun']} ok"}


def crowd_org(size):
    """An org file with ``size`` members of the role ``crowd`` (c00, c01...) and the applicant ``alice``."""
    lines = ["users:", "  alice: {}"]
    lines += [f"  c{n:02d}: {{roles: [crowd]}}" for n in range(size)]
    return "\n".join(lines) + "\n"


def crowd_template(mode):
    """A template ``crowd-<mode>`` approved by the role ``crowd`` (any one, or all) whose action is ``cmdb.update``."""
    return {"name": f"crowd-{mode}", "fields": [{"name": "host", "type": "str", "required": True}],
            "steps": [{"name": "crowd", "role": "crowd", "mode": mode}],
            "action": {"fun": "cmdb.update", "args": ["{{ form.host }}"], "kwargs": {"status": "maintenance"}}}


class CountingExecutor:
    """Thread-safe: counts the runs of each action id."""

    def __init__(self):
        import collections
        import threading

        self.runs = collections.Counter()
        self._lock = threading.Lock()

    def __call__(self, call):
        with self._lock:
            self.runs[call["action_id"]] += 1
        return {"ok": True, "retcode": 0, "output": "ok"}
