"""Deploy settings: ``saltops:deploy`` of the master config over these defaults.

A deploy call may override the per-deploy keys (``PER_DEPLOY``); the rest are
master-wide.  Documented in ``docs/deploy.md``.
"""

import copy
import re

from saltops.errors import ConfigError, ValidationError

STRATEGIES = ("rolling", "canary", "blue_green")

DEFAULTS = {
    "strategy": "rolling",
    # Hosts per batch: a number, or a share of the targets ("25%").
    "batch_size": "25%",
    # No batch takes more than this share of the hosts of any ISP line or IDC
    # (at least one host per batch).
    "max_share": 0.34,
    "canary_size": 1,
    # Stop after the canary batch until deploy.resume (a person looks first).
    "pause": False,
    # Failed or unreachable hosts tolerated before the deploy stops and rolls back.
    "max_failures": 0,
    # Salt's return timeout: how long to wait for minions before asking
    # whether they still run the job (saltutil.find_job).
    "return_timeout": 30,
    # Hard limit for one minion job (download, switch or rollback) in seconds.
    "job_timeout": 600,
    # Hosts per published job.
    "chunk_size": 500,
    # A running deploy whose process stopped writing its heartbeat for this long
    # (seconds) has lost its runner; its lock may be taken over.
    "lock_stale_after": 90,
    "heartbeat_interval": 10,
    # Blue/green: seconds to wait for the balancers' state runs after a flip
    # (cmdb.refresh apply_timeout); a balancer not done by then fails the flip.
    "balancer_timeout": 300,
    "history_limit": 20,
    # When the database goes away in the middle of a batch: the hosts' outcomes
    # are journaled in this directory (the runner's default:
    # <cachedir>/saltops/deploy-journal) and the deploy waits this many seconds
    # for the database before it stops at that batch boundary.
    "journal_dir": None,
    "store_wait": 30,
    # Seconds a deploy keeps publishing a step to a master that does not answer
    # (a master restart) before it stops there, resumable.
    "master_wait": 60,
}

PER_DEPLOY = (
    "strategy",
    "batch_size",
    "max_share",
    "canary_size",
    "pause",
    "max_failures",
    "return_timeout",
    "job_timeout",
)

_PERCENT = re.compile(r"^\s*(\d{1,3}(?:\.\d+)?)\s*%\s*$")


def load(conf):
    """Effective deploy settings from the ``saltops:`` block (as :func:`saltops.config.load` returns it)."""
    raw = (conf or {}).get("deploy") or {}
    if not isinstance(raw, dict):
        raise ConfigError("saltops:deploy must be a mapping")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"unknown saltops:deploy key(s): {', '.join(unknown)} (known: {', '.join(DEFAULTS)})"
        )
    merged = copy.deepcopy(DEFAULTS)
    merged.update(raw)
    try:
        return options(merged, {})
    except ValidationError as err:
        raise ConfigError(f"saltops:deploy: {err}") from None


def _number(name, value, kind, minimum, maximum=None):
    if isinstance(value, bool):
        raise ValidationError(f"{name} must be a number, got {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a number, got {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ValidationError(f"{name} must be {bound}, got {value!r}")
    return number


def _bool(name, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.lower() in ("true", "yes", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValidationError(f"{name} must be true or false, got {value!r}")


def batch_size_of(value, total):
    """Resolve ``batch_size`` (a number or "N%") for ``total`` hosts; at least 1."""
    if isinstance(value, str):
        match = _PERCENT.match(value)
        if match:
            share = float(match.group(1))
            if not 0 < share <= 100:
                raise ValidationError(f"batch_size must be between 1% and 100%, got {value!r}")
            return max(1, int(total * share / 100))
    return _number("batch_size", value, int, 1)


def options(base, overrides):
    """Validate per-deploy options: ``base`` (config) overridden by ``overrides`` (call arguments)."""
    out = dict(base)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in PER_DEPLOY:
            raise ValidationError(f"unknown deploy option {key!r} (known: {', '.join(PER_DEPLOY)})")
        out[key] = value
    if out["strategy"] not in STRATEGIES:
        raise ValidationError(f"strategy must be one of {', '.join(STRATEGIES)}, got {out['strategy']!r}")
    batch_size_of(out["batch_size"], 1)
    out["max_share"] = _number("max_share", out["max_share"], float, 0.01, 1.0)
    out["canary_size"] = _number("canary_size", out["canary_size"], int, 1)
    out["pause"] = _bool("pause", out["pause"])
    out["max_failures"] = _number("max_failures", out["max_failures"], int, 0)
    for key in (
        "return_timeout",
        "job_timeout",
        "lock_stale_after",
        "heartbeat_interval",
        "balancer_timeout",
    ):
        if key in out:
            out[key] = _number(key, out[key], float, 1)
    for key in ("store_wait", "master_wait"):
        if key in out:
            out[key] = _number(key, out[key], float, 0)
    if out.get("journal_dir") is not None and not isinstance(out["journal_dir"], str):
        raise ValidationError(f"journal_dir must be a directory path, got {out['journal_dir']!r}")
    if "chunk_size" in out:
        out["chunk_size"] = _number("chunk_size", out["chunk_size"], int, 1)
    return out
