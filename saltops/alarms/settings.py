"""The ``saltops:alarms`` and ``saltops:notify`` settings, with their defaults and checks."""

import copy

from saltops.alarms.matchers import parse_duration
from saltops.errors import ValidationError
from saltops.notify import registry

ALARMS = {
    # The rules file (YAML): rules, route, receivers, inhibit_rules.  Required by the engine.
    "rules_file": None,
    # The engine's HTTP endpoint: /metrics and the Alertmanager webhook.  port 0 turns it off.
    "listen_host": "127.0.0.1",
    "listen_port": 9791,
    # Bearer token the Alertmanager webhook must present (None: no token asked).
    "webhook_token": None,
    # How often the engine evaluates, flushes groups and writes behind (seconds).
    "tick": 0.2,
    # Events larger than this (approximate bytes of the decoded data) are rejected.
    "max_event_bytes": 65536,
    # Refuse events whose minion id has no accepted key on this master.
    "require_accepted_key": True,
    # Label alarms with the host's CMDB record (role, lines, idc, env, owner, status, platform).
    "cmdb_labels": True,
    # Fire saltops/alarm/<fingerprint>/firing|resolved on the master bus (for reactor/).
    "fire_events": True,
    "external_url": "",
    # Resolved alarms, history and delivered notifications are kept this long.
    "keep_days": 30,
}

NOTIFY = {
    "channels": {},
    "timeout": 10,
    "workers": 4,
    "retry": {"max_attempts": 10, "backoff": "5s", "max_backoff": "10m"},
}


def _merge(base, over):
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load(conf):
    """``(alarms, notify)`` settings from the ``saltops:`` config; ValidationError lists the problems."""
    problems = []
    alarms = _merge(ALARMS, conf.get("alarms") or {})
    notify = _merge(NOTIFY, conf.get("notify") or {})
    unknown = set(alarms) - set(ALARMS)
    if unknown:
        problems.append(f"saltops:alarms: unknown keys {sorted(unknown)}")
    unknown = set(notify) - set(NOTIFY)
    if unknown:
        problems.append(f"saltops:notify: unknown keys {sorted(unknown)}")
    port = alarms["listen_port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
        problems.append("saltops:alarms:listen_port: a TCP port (0 turns the endpoint off)")
    for key in ("tick", "max_event_bytes", "keep_days"):
        value = alarms[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            problems.append(f"saltops:alarms:{key}: a positive number")
    retry = notify["retry"]
    try:
        retry["backoff"] = parse_duration(retry["backoff"], "saltops:notify:retry:backoff")
        retry["max_backoff"] = parse_duration(retry["max_backoff"], "saltops:notify:retry:max_backoff")
    except ValueError as err:
        problems.append(str(err))
    if not isinstance(retry.get("max_attempts"), int) or retry["max_attempts"] < 1:
        problems.append("saltops:notify:retry:max_attempts: a whole number >= 1")
    if not isinstance(notify["workers"], int) or notify["workers"] < 1:
        problems.append("saltops:notify:workers: a whole number >= 1")
    problems.extend(registry.check(notify["channels"]))
    if problems:
        raise ValidationError("invalid alarm/notification settings", problems)
    return alarms, notify
