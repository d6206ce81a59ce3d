"""The ``saltops:`` block of the master config, read in one place with its defaults.

Every part of SaltOps takes its settings from :func:`load`, never from
``__opts__`` directly, so that the defaults and the checks live here only.
The full list of keys is documented in ``docs/configuration.md``.
"""

import copy
import os
import re
import threading

from saltops.errors import ConfigError

DEFAULTS = {
    # SQLAlchemy URL: sqlite:////path/file.db or mysql+pymysql://user:pw@host:3306/db.
    # Required, with no default: a block that lost it (a master.d file whose `saltops:`
    # replaced the whole block) must stop with an error, never open a new empty CMDB.
    "db_url": None,
    # Extra keyword arguments for sqlalchemy.create_engine (pool sizes...).
    "db_options": {},
    # A read replica of db_url near this master: pillar renders and the alarm
    # engine's CMDB labels read from it; every write still goes to db_url.
    # null: read from db_url.
    "read_url": None,
    # create_engine keyword arguments for read_url (db_options are not reused).
    "read_options": {},
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
        # At most how long (seconds) a write made through another master stays unseen
        # by this master's pillar: writes through this master's runners move the
        # version stamp and are seen at once.  0 asks the database on every render.
        "version_check_interval": 1,
        # Last known good snapshot, served (marked stale) while the database is down.
        "snapshot_file": None,
        # Seconds a process waits after a failed read before it tries the database
        # again (meanwhile it serves stale data without waiting for timeouts).
        "retry_interval": 5,
        # Seconds between two ``saltops/cmdb/unavailable`` events during one outage.
        "event_interval": 300,
        # Seconds between two writes of the snapshot file.
        "persist_interval": 60,
        # With read_url: seconds between two reads of the primary's version counter
        # (how a lagging replica or a dead primary is noticed).
        "replica_check_interval": 5,
        # With read_url: seconds the replica may stay behind the primary before the
        # pillar is marked stale (a primary that cannot be reached marks it at once).
        "replica_max_lag": 30,
        # Directories `cmdb.import path=...` may read from (symlinks resolved first);
        # null: <cachedir>/saltops/import; an empty list turns path imports off.
        "import_roots": None,
        # Seconds `cmdb.drift` waits for minions to answer.
        "drift_timeout": 5,
    },
    "deploy": {},
    "alarms": {},
    "notify": {},
    "tasks": {},
    "tickets": {},
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
    if conf["db_url"] is not None and not (isinstance(conf["db_url"], str) and conf["db_url"].strip()):
        raise ConfigError(
            "saltops:db_url must be a database URL such as sqlite:////var/lib/saltops/saltops.db"
        )
    if not conf["cmdb"]["snapshot_file"]:
        conf["cmdb"]["snapshot_file"] = os.path.join(cachedir, "saltops", "cmdb-snapshot.msgpack")
    if conf["cmdb"]["import_roots"] is None:
        conf["cmdb"]["import_roots"] = [os.path.join(cachedir, "saltops", "import")]
    roots = conf["cmdb"]["import_roots"]
    if not isinstance(roots, list) or not all(isinstance(r, str) and os.path.isabs(r) for r in roots):
        raise ConfigError("saltops:cmdb:import_roots must be a list of absolute directory paths")
    for key in ("lines", "roles", "idcs", "envs", "machine_types"):
        values = conf["cmdb"][key]
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ConfigError(f"saltops:cmdb:{key} must be a list of non-empty strings")
    if not isinstance(conf["cmdb"]["lb_serves"], dict):
        raise ConfigError("saltops:cmdb:lb_serves must map a balancer role to a served role")
    _check_balancer_states(conf["cmdb"])
    _check_read_url(conf)
    if not isinstance(conf["cmdb"]["balancer_test"], bool):
        raise ConfigError("saltops:cmdb:balancer_test must be true or false")
    return conf


MISSING_DB_URL = (
    "saltops:db_url is not set in the master config, so SaltOps does not know which database holds "
    "the CMDB and will not create an empty one. Set it in the file that holds your `saltops:` block "
    "(usually /etc/salt/master.d/saltops.conf). Mind Salt's include rule: a `saltops:` block in any "
    "master.d/*.conf file replaces the block of the main `master` file as a whole (db_url included), "
    "while blocks in several master.d files are merged key by key"
)


def db_url(conf):
    """The database URL of a loaded configuration; :class:`ConfigError` when none was given."""
    url = conf.get("db_url")
    if not url:
        raise ConfigError(MISSING_DB_URL)
    return url


def _check_read_url(conf):
    if conf["read_url"] is not None and (not isinstance(conf["read_url"], str) or "://" not in conf["read_url"]):
        raise ConfigError("saltops:read_url must be a database URL such as mysql://reader@replica:3306/saltops, or null")
    if not isinstance(conf["read_options"], dict):
        raise ConfigError("saltops:read_options must be a mapping of create_engine keyword arguments")
    for key in ("replica_check_interval", "replica_max_lag"):
        value = conf["cmdb"][key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"saltops:cmdb:{key} must be a number of seconds (0 or more)")


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


# The last configuration :func:`load_cached` built, per ``saltops:`` block.
_LOADED = {}
_LOADED_LOCK = threading.Lock()


def load_cached(opts):
    """:func:`load` for hot paths (a pillar render): the same result object while the block is unchanged.

    Building the settings costs a deep copy of the defaults (~100 µs), more
    than the rest of a render; the block of a master worker's ``__opts__`` is
    one long-lived object, so the result is kept per block and handed out again
    while the block still equals what it was (a deep comparison, ~1 µs).
    Callers must treat the result as read-only.
    """
    raw = opts.get("saltops") if opts is not None else None
    cachedir = opts.get("cachedir") if opts is not None else None
    key = (id(raw), cachedir)
    hit = _LOADED.get(key)
    if hit is not None and hit[0] is raw and hit[1] == raw:
        return hit[2]
    conf = load(opts)
    with _LOADED_LOCK:
        if len(_LOADED) > 64:
            _LOADED.clear()
        _LOADED[key] = (raw, copy.deepcopy(raw), conf)
    return conf
