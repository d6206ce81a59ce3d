"""Salt daemons for the tests, configured exactly like the lab.

The master settings come from :func:`saltops.lab.config.master_overrides` (the
same function ``saltops lab up`` uses): SaltOps' file_roots, pillar_roots,
ext_pillar, reactor map, engines, netapi clients, salt-api on loopback without
TLS, and eauth ``file`` with the lab's users and ACLs.  pytest-salt-factories
adds its own daemon paths, ports and a scratch state/pillar tree in front of
ours (``master.state_tree.base`` / ``master.pillar_tree.base``).
"""

import contextlib
import copy
import os

from pytestshellutils.utils import ports

from saltops.lab import config as labconfig
from saltops.lab import demo
from saltops.lab import users as labusers

MASTER_ID = "saltops-master"
MINION_IDS = demo.MINION_IDS


def master_overrides(db_url, users_file, api_port=None, extra=None):
    """The master config for a test master (``extra`` is merged on top, dicts recursively)."""
    conf = labconfig.master_overrides(db_url, users_file, api_port or ports.get_unused_localhost_port())
    conf.update(
        {
            "open_mode": False,
            "auto_accept": True,
            "worker_threads": 3,
        }
    )
    return _merge(conf, extra or {})


def minion_overrides(extra=None):
    """A test minion's settings, as the lab's minions have them.

    ``loop_interval: 1`` is Salt's default, which pytest-salt-factories lowers to
    0.05 s.  Salt's beacons run once a second but count each run as
    ``loop_interval`` seconds (``salt/beacons/__init__.py``, ``_process_interval``),
    so under 0.05 a beacon with ``interval: 2`` fires every 40 s.
    """
    return _merge({"acceptance_wait_time": 2, "loop_interval": 1, "grains": {"saltops_lab": True}}, extra or {})


def new_minion(master, minion_id, overrides=None):
    """A minion factory for ``minion_id`` on ``master``, whose key the master has not seen.

    Modules that start minions of the same id one after the other get new key
    pairs each time (pytest-salt-factories gives each a directory of its own);
    a key the master accepted earlier for that id would make it refuse the new
    one ("the public keys did not match") until the start times out.
    """
    forget_key(master, minion_id)
    return master.salt_minion_daemon(minion_id, overrides=overrides or minion_overrides())


def forget_key(master, minion_id):
    """Drop every key ``master`` holds for ``minion_id`` (accepted, pending, rejected, denied)."""
    pki = master.config["pki_dir"]
    for folder in ("minions", "minions_pre", "minions_rejected", "minions_denied"):
        try:
            os.unlink(os.path.join(pki, folder, minion_id))
        except FileNotFoundError:
            pass


@contextlib.contextmanager
def started_minions(master, names, overrides=None):
    """``{name: minion factory}``, each new to the master and started in turn, all stopped at the end.

    Their keys go with them: on a master shared by later modules, an accepted
    key of a stopped minion makes every ``'*'`` call wait for it to time out.
    """
    started = {}
    try:
        for name in names:
            factory = new_minion(master, name, overrides)
            factory.start(start_timeout=120)
            started[name] = factory
        yield started
    finally:
        for name, factory in reversed(list(started.items())):
            factory.terminate()
            forget_key(master, name)


def write_users(path):
    """Generate passwords for the lab users into ``path``; return ``{name: password}``."""
    passwords = labusers.generate_passwords()
    labusers.write_users_file(path, passwords)
    return passwords


def _merge(base, over):
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
