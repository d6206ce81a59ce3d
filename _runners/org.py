# ruff: noqa: F821  (__opts__ is injected by the Salt loader)
"""
People for the ticket workflow: users, departments, roles, managers and delegates.

Thin runner over :mod:`saltops.org` (see ``docs/tickets.md``).  Every change
is audited under the acting eauth user; a refused call changes nothing and
returns ``{"result": False, "error": ..., "retcode": 1}``.
"""

import time

from saltops import runnerkit
from saltops.org import people
from saltops.org.schema import HEAD as ORG_HEAD
from saltops.runnerkit import refuses

__virtualname__ = "org"
__func_alias__ = {"list_": "list"}

_call = runnerkit.call

def __virtual__():
    return __virtualname__

def _store():
    return runnerkit.open_store(__opts__, newest=ORG_HEAD)[1]

@refuses
def load(path=None, text=None):
    """
    Replace the org defined by file with this YAML (``path`` on the master, or ``text``):
    ``departments``, ``users`` (department, manager, roles...), ``delegates``.
    Checked whole first; one problem and nothing changes.

    CLI Example:

    .. code-block:: bash

        salt-run org.load /srv/saltops/org.yml
    """
    text = runnerkit.file_or_text("org", path, text)
    return _call(people.load, _store(), runnerkit.actor(globals()), text, time.time())

@refuses
def sync_eauth():
    """
    Add the users of the master's ``external_auth`` and give each the roles of
    its ``group%`` entries they belong to (the OS groups Salt's PAM eauth reads).

    CLI Example:

    .. code-block:: bash

        salt-run org.sync_eauth
    """
    import salt.utils.user

    def groups_of(name):
        try:
            return salt.utils.user.get_group_list(name)
        except KeyError:
            return []

    return _call(people.sync_eauth, _store(), runnerkit.actor(globals()), __opts__.get("external_auth") or {},
                 groups_of)

@refuses
def list_():
    """
    Users (with roles), departments and delegations.

    CLI Example:

    .. code-block:: bash

        salt-run org.list
    """
    with _store().connect() as conn:
        return _call(people.listing, conn)

@refuses
def show(name):
    """
    One user: department, manager, roles.

    CLI Example:

    .. code-block:: bash

        salt-run org.show alice
    """
    with _store().connect() as conn:
        return _call(people.show, conn, name)
