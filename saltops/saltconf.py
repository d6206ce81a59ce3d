"""The master configuration SaltOps needs, built in one place.

``saltops config master`` prints :func:`master_block`; the lab and the test
fixtures build their masters from the same function, and
``salt/master.d/saltops.conf`` is that block for a tree under ``/srv/saltops``
(a unit test keeps the two in step).

The reactor map and the engine list are plain data here: a part that needs a
reactor or an engine adds one entry to :data:`REACTORS` or :data:`ENGINES`, and
the printed block, the sample file, the lab and the tests all get it.
"""

from pathlib import Path

from saltops.paths import tree_root

# Event tag -> reactor SLS files, relative to the shipped tree.  Several
# entries may share a tag; they are grouped in the order given.
REACTORS = [
    ("saltops/cmdb/changed", "reactor/cmdb_changed.sls"),
    # A host that gained an app gets the app's config set (docs/confpush.md).
    ("saltops/cmdb/changed", "reactor/confpush_cmdb_changed.sls"),
    ("saltops/cmdb/recovered", "reactor/cmdb_recovered.sls"),
    # A firing alarm whose rule has `remediate:`: run the rule's allow-listed action.
    ("saltops/alarm/*/firing", "reactor/alarm_remediate.sls"),
]

# Engines the master runs: ``(engine name, its options)``.
ENGINES = [
    # Announces the end of a CMDB database outage even when no pillar renders.
    ("saltops_cmdb_watch", {"interval": 10}),
    # Beacon events and Alertmanager alerts -> alarms -> notifications.  It
    # declines to start (and says why in the master log) until
    # saltops:alarms:rules_file is set.
    ("saltops_alarms", {}),
    # Scheduled tasks (the `task` runner): sleeps until the next due time; each due
    # time fires once among the masters sharing the database.
    ("saltops_tasks", {}),
]

# salt-api clients the runners and the CI hand-over use.
NETAPI_CLIENTS = ["local", "local_async", "runner", "runner_async", "wheel"]

# Where the CMDB lives when the user gives no URL: a SQLite file beside the
# master's state.  Production masters use MySQL/MariaDB (docs/configuration.md).
DEFAULT_DB_URL = "sqlite:////var/lib/saltops/saltops.db"

# The fileserver root that holds the minion-side extension folders (symlinks
# to the top-level _modules/... in a checkout, copies in an installed package).
MINION_ROOT = "salt/fileroot"

# The external pillar's virtual name (ext_pillar_cmdb.py).
EXT_PILLAR = "saltops_cmdb"

DEFAULT_API = {
    "host": "0.0.0.0",
    "port": 8000,
    "ssl_crt": "/etc/pki/tls/certs/localhost.crt",
    "ssl_key": "/etc/pki/tls/private/localhost.key",
}


def reactor_map(root):
    """Salt's ``reactor:`` list for a tree at ``root``."""
    grouped = {}
    for tag, sls in REACTORS:
        grouped.setdefault(tag, []).append(str(Path(root) / sls))
    return [{tag: files} for tag, files in grouped.items()]


def engines_list():
    """Salt's ``engines:`` list."""
    return [{name: dict(options or {})} for name, options in ENGINES]


def master_block(root=None, db_url=None, api=None):
    """The configuration a salt-master includes to run SaltOps.

    ``root`` is the folder holding ``states/``, ``pillar/``, ``reactor/`` and
    ``_modules/`` (default: this installation's tree); ``db_url`` the CMDB's
    SQLAlchemy URL; ``api`` the ``rest_cherrypy`` settings (default: port 8000
    on all addresses with a TLS certificate).
    """
    root = Path(root) if root else tree_root()
    return {
        "saltops": {"db_url": db_url or DEFAULT_DB_URL},
        # salt/fileroot holds only the minion-side folders (_modules...), so that
        # salt://_modules reaches the minions without serving anything else.
        "file_roots": {"base": [str(root / "states"), str(root / MINION_ROOT)]},
        "pillar_roots": {"base": [str(root / "pillar")]},
        # PillarStack runs after the CMDB pillar and layers role, OS family and
        # env data (beacons, role settings) on the roles the CMDB gives a host.
        "ext_pillar": [{EXT_PILLAR: {}}, {"stack": str(root / "pillar" / "stack" / "stack.cfg")}],
        "reactor": reactor_map(root),
        "engines": engines_list(),
        "netapi_enable_clients": list(NETAPI_CLIENTS),
        "rest_cherrypy": dict(api if api is not None else DEFAULT_API),
    }


def key_paths(data, prefix=""):
    """Every key path of a nested mapping (``a``, ``a:b``...): used to compare configs."""
    out = set()
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}:{key}" if prefix else str(key)
            out.add(path)
            out |= key_paths(value, path)
    elif isinstance(data, list):
        for item in data:
            out |= key_paths(item, prefix + "[]")
    return out
