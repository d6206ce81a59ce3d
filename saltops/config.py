"""The ``saltops:`` block of the master config, read in one place with its defaults.

Every part of SaltOps takes its settings from :func:`load`, never from
``__opts__`` directly, so that the defaults and the checks live here only.
The full list of keys is documented in ``docs/configuration.md``.
"""

import copy
import os
import re

from saltops.errors import ConfigError

DEFAULTS = {
    # SQLAlchemy URL: sqlite:////path/file.db or mysql+pymysql://user:pw@host:3306/db
    "db_url": None,
    # Extra keyword arguments for sqlalchemy.create_engine (pool sizes...).
    "db_options": {},
    "cmdb": {
        "lines": ["telecom", "unicom", "mobile", "cernet", "bgp", "intranet"],
        "roles": ["base", "web", "lb", "db", "cache", "monitor"],
        "idcs": ["bj-idc1", "bj-idc2", "sh-idc1", "gz-idc1", "lab"],
        "envs": ["prod", "staging", "test", "dev"],
        "machine_types": ["physical", "vm", "container"],
        # A balancer role -> the role whose online hosts (same env) are its backends.
        "lb_serves": {"lb": "web"},
        # A balancer role -> the state `cmdb.refresh` applies on its hosts after a
        # change of their backends (the HECD loop, docs/hecd.md).  A role mapped to
        # null (or not listed) gets its pillar refreshed only.
        "balancer_states": {"lb": "lb"},
        # Apply those states with test=True: the job shows what would change in the
        # balancers' config and changes nothing (a lab, or a team that reviews first).
        "balancer_test": False,
        # How often (seconds) a master worker asks the database whether the CMDB
        # changed.  0 asks on every pillar render.
        "version_check_interval": 0,
        # Last known good snapshot, served (marked stale) while the database is down.
        "snapshot_file": None,
        # Seconds a process waits after a failed read before it tries the database
        # again (meanwhile it serves stale data without waiting for timeouts).
        "retry_interval": 5,
        # Seconds between two ``saltops/cmdb/unavailable`` events during one outage.
        "event_interval": 300,
        # Seconds between two writes of the snapshot file.
        "persist_interval": 60,
        # Directories `cmdb.import path=...` may read from; empty: any file the master can read.
        "import_roots": [],
        # Seconds `cmdb.drift` waits for minions to answer.
        "drift_timeout": 5,
    },
    "deploy": {},
    "alarms": {},
    "notify": {},
}


def _merge(base, over):
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load(opts):
    """Return the effective ``saltops:`` settings for a Salt ``opts`` dict."""
    # Salt's opts object walks every key on a truth test: avoid ``opts or {}``.
    if opts is None:
        opts = {}
    raw = opts.get("saltops") or {}
    if not isinstance(raw, dict):
        raise ConfigError("the 'saltops:' key of the master config must be a mapping")
    conf = _merge(DEFAULTS, raw)
    cachedir = opts.get("cachedir") or "/var/cache/salt/master"
    if not conf["db_url"]:
        conf["db_url"] = "sqlite:///" + os.path.join(cachedir, "saltops", "saltops.db")
    if not conf["cmdb"]["snapshot_file"]:
        conf["cmdb"]["snapshot_file"] = os.path.join(cachedir, "saltops", "cmdb-snapshot.msgpack")
    for key in ("lines", "roles", "idcs", "envs", "machine_types"):
        values = conf["cmdb"][key]
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ConfigError(f"saltops:cmdb:{key} must be a list of non-empty strings")
    if not isinstance(conf["cmdb"]["lb_serves"], dict):
        raise ConfigError("saltops:cmdb:lb_serves must map a balancer role to a served role")
    _check_balancer_states(conf["cmdb"])
    if not isinstance(conf["cmdb"]["balancer_test"], bool):
        raise ConfigError("saltops:cmdb:balancer_test must be true or false")
    return conf


# An SLS name as `state.apply` takes it: dotted names of letters, digits, _ and -.
_SLS_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


def _check_balancer_states(cmdb):
    states = cmdb["balancer_states"]
    if not isinstance(states, dict):
        raise ConfigError("saltops:cmdb:balancer_states must map a balancer role to the state to apply")
    for role, sls in states.items():
        if role not in cmdb["lb_serves"]:
            raise ConfigError(
                f"saltops:cmdb:balancer_states: {role!r} is not a balancer role "
                f"(saltops:cmdb:lb_serves has {', '.join(sorted(map(str, cmdb['lb_serves']))) or 'none'})"
            )
        if sls in (None, False, ""):
            continue
        if not isinstance(sls, str) or not _SLS_NAME.match(sls):
            raise ConfigError(
                f"saltops:cmdb:balancer_states:{role} must be an SLS name such as 'lb' or 'lb.config' "
                f"(or null to only refresh the pillar), not {sls!r}"
            )
