"""Config push settings: ``saltops:confpush`` of the master config over these defaults."""

import copy

from saltops.errors import ConfigError

DEFAULTS = {
    # Largest template or rendered file, in bytes.
    "max_file_bytes": 256 * 1024,
    # Largest set (all templates together), in bytes.
    "max_set_bytes": 2 * 1024 * 1024,
    # Most files in one set.
    "max_files": 64,
    # System paths a set may write to although they are refused by default
    # (e.g. "/etc/sudoers.d" for sudo rules checked with visudo).
    "allowed_system_paths": [],
    # Hosts per batch: a number or a share of the targets ("25%").
    "batch_size": "50%",
    # No batch takes more than this share of any ISP line or IDC (at least one host).
    "max_share": 0.5,
    # Seconds Salt waits for a minion's state run before asking if it still runs it.
    "return_timeout": 60,
    # Hard limit for one batch's state runs, in seconds.
    "job_timeout": 300,
    # A push driven from another master whose heartbeat (written before and after
    # each batch) is older than this has lost its runner and loses its lock; it
    # must exceed a batch's longest run (job_timeout, twice with a restore).
    # On the same master, whether the process still exists decides at once.
    "lock_stale_after": 900,
}

_NUMBERS = (
    "max_file_bytes",
    "max_set_bytes",
    "max_files",
    "return_timeout",
    "job_timeout",
    "lock_stale_after",
)


def load(conf):
    """Effective settings from the ``saltops:`` block (as :func:`saltops.config.load` returns it)."""
    raw = (conf or {}).get("confpush") or {}
    if not isinstance(raw, dict):
        raise ConfigError("saltops:confpush must be a mapping")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"saltops:confpush: unknown key(s) {', '.join(unknown)}")
    out = copy.deepcopy(DEFAULTS)
    out.update(copy.deepcopy(raw))
    for key in _NUMBERS:
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"saltops:confpush:{key} must be a positive whole number, got {value!r}")
    if out["lock_stale_after"] <= 2 * out["job_timeout"]:
        raise ConfigError("saltops:confpush:lock_stale_after must exceed twice job_timeout")
    paths = out["allowed_system_paths"]
    if not isinstance(paths, list) or not all(isinstance(p, str) and p.startswith("/") for p in paths):
        raise ConfigError("saltops:confpush:allowed_system_paths must be a list of absolute paths")
    share = out["max_share"]
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise ConfigError(f"saltops:confpush:max_share must be in (0, 1], got {share!r}")
    return out
