"""Salt daemons for the tests, configured exactly like the lab.

The master settings come from :func:`saltops.lab.config.master_overrides` (the
same function ``saltops lab up`` uses): SaltOps' file_roots, pillar_roots,
ext_pillar, reactor map, engines, netapi clients, salt-api on loopback without
TLS, and eauth ``file`` with the lab's users and ACLs.  pytest-salt-factories
adds its own daemon paths, ports and a scratch state/pillar tree in front of
ours (``master.state_tree.base`` / ``master.pillar_tree.base``).
"""

import copy

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
    return _merge({"acceptance_wait_time": 2, "grains": {"saltops_lab": True}}, extra or {})


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
