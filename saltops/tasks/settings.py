"""The ``saltops:tasks`` settings, with their defaults and checks (see docs/tasks.md)."""

import copy

from saltops.errors import ConfigError

DEFAULTS = {
    # Bounds of a task's timeout (seconds); a definition outside them is refused.
    "min_timeout": 5,
    "max_timeout": 86400,
    "default_timeout": 600,
    # A due time found more than this many seconds late (the masters were down) is
    # "missed": the task's catch_up rule decides whether it runs once or is skipped.
    "misfire_grace": 60,
    # Bytes of output kept per host and per run (the rest is cut, and marked so).
    "output_limit": 16384,
    # History: runs older than keep_days go, and at most keep_runs per task stay.
    "keep_days": 30,
    "keep_runs": 500,
    # How often (seconds) the engine looks for definitions changed by a runner or another
    # master, and writes the heartbeat of its running runs.
    "refresh": 2,
    # LocalClients publishing minion jobs in parallel (a burst of due tasks); the master's
    # worker_threads bound what more of them can gain.
    "publishers": 3,
    "heartbeat": 5,
    # A running run whose owner wrote no heartbeat for this long (seconds) is marked
    # interrupted (its master died); nothing is run again for it.
    "stale_after": 30,
    # Failing tasks become alarms through the alarm engine's Alertmanager webhook.
    "alarm_url": "http://127.0.0.1:9791/api/v1/alertmanager",
    "alarm_token": None,
    # A firing alarm is sent again this often (seconds): the alarm engine resolves an
    # external alert it has not heard of for saltops:alarms rules' resolve_after.
    "alarm_resend": 60,
    "alarm_severity": "warning",
    # Which functions a task may call (shell-style patterns): a task runs with the master's
    # rights, so narrow these to what the users allowed task.add may run themselves.
    "allow_runner": ["*"],
    "allow_minion": ["*"],
}

_POSITIVE = ("min_timeout", "max_timeout", "default_timeout", "misfire_grace", "output_limit", "keep_days",
             "keep_runs", "refresh", "publishers", "heartbeat", "stale_after", "alarm_resend")


def load(conf):
    """Effective task settings from the ``saltops:`` block; :class:`ConfigError` lists every problem."""
    raw = (conf or {}).get("tasks") or {}
    if not isinstance(raw, dict):
        raise ConfigError("saltops:tasks must be a mapping")
    problems = []
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
    merged = copy.deepcopy(DEFAULTS)
    merged.update(raw)
    for key in _POSITIVE:
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            problems.append(f"{key} must be a positive number, got {value!r}")
    if not problems and not merged["min_timeout"] <= merged["default_timeout"] <= merged["max_timeout"]:
        problems.append("default_timeout must lie between min_timeout and max_timeout")
    for key in ("allow_runner", "allow_minion"):
        if not isinstance(merged[key], list) or not all(isinstance(p, str) and p for p in merged[key]):
            problems.append(f"{key} must be a list of function name patterns such as 'state.apply' or 'cmd.*'")
    if merged["alarm_url"] is not None and not str(merged["alarm_url"]).startswith(("http://", "https://")):
        problems.append("alarm_url must be an http(s) URL, or null to send no alarms")
    if problems:
        raise ConfigError("saltops:tasks: " + "; ".join(problems))
    return merged
