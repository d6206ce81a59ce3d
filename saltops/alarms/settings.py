"""The ``saltops:alarms`` settings, with their defaults and checks.

The engine also needs the ``saltops:notify`` settings, which belong to
:mod:`saltops.notify.settings`; :func:`load` checks both so that one error
lists every problem.
"""

import copy

from saltops.errors import ValidationError
from saltops.notify import settings as notify_settings

ALARMS = {
    # The rules file (YAML): rules, route, receivers, inhibit_rules.  Required by the engine.
    "rules_file": None,
    # The engine's HTTP endpoint: /metrics and the Alertmanager webhook.  port 0 turns it off.
    "listen_host": "127.0.0.1",
    "listen_port": 9791,
    # Bearer token the Alertmanager webhook must present; without one the webhook is off.
    "webhook_token": None,
    # Bearer token /metrics asks for; without one /metrics is open on loopback and off elsewhere.
    "metrics_token": None,
    # A non-loopback listen_host is refused unless TLS terminates in front (a reverse proxy).
    "behind_tls_proxy": False,
    # Largest webhook body (bytes).  A 10,000-alert Alertmanager group measured 6.2 MiB.
    "max_body_bytes": 16 * 1024 * 1024,
    # Most alerts in one webhook request.
    "webhook_max_alerts": 20000,
    # Seconds a socket read may wait (a stalled client) and an idle connection is kept.
    "read_timeout": 10,
    # Seconds one request may hold a worker, from its first byte to the answer.
    "request_timeout": 60,
    # Worker threads answering requests, and open connections at most.
    "http_threads": 8,
    "max_connections": 512,
    # How often the engine evaluates, flushes groups and writes behind (seconds).
    "tick": 0.2,
    # Seconds of the lease the evaluating engine holds among the masters sharing the
    # database (saltops.alarms.lease): a standby takes over within about 1.3 x this
    # after the active engine's master died.
    "lease": 15,
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


def _merge(base, over):
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _whole(value, low, high):
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_http(alarms):
    """Problems with the HTTP endpoint's settings; a token's value is never quoted."""
    problems = []
    for key in ("webhook_token", "metrics_token"):
        token = alarms[key]
        if token is not None and not (
            isinstance(token, str) and 16 <= len(token) <= 1024 and all("!" <= ch <= "~" for ch in token)
        ):
            problems.append(f"saltops:alarms:{key}: 16 to 1024 printable ASCII characters without spaces "
                            "(for example the output of `openssl rand -hex 32`), or null")
    if not isinstance(alarms["listen_host"], str):
        problems.append("saltops:alarms:listen_host: an address or host name")
    if not isinstance(alarms["behind_tls_proxy"], bool):
        problems.append("saltops:alarms:behind_tls_proxy: true or false")
    if not _whole(alarms["max_body_bytes"], 1024, 1024 ** 3):
        problems.append("saltops:alarms:max_body_bytes: a whole number of bytes from 1024 to 1 GiB")
    if not _whole(alarms["webhook_max_alerts"], 1, 10 ** 6):
        problems.append("saltops:alarms:webhook_max_alerts: a whole number from 1 to 1,000,000")
    if not _whole(alarms["http_threads"], 1, 256):
        problems.append("saltops:alarms:http_threads: a whole number from 1 to 256")
    if not _whole(alarms["max_connections"], 1, 65536):
        problems.append("saltops:alarms:max_connections: a whole number from 1 to 65536")
    for key in ("read_timeout", "request_timeout"):
        value = alarms[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
            problems.append(f"saltops:alarms:{key}: seconds, above 0 and at most 3600")
    return problems


def load(conf):
    """``(alarms, notify)`` settings from the ``saltops:`` config; ValidationError lists the problems."""
    problems = []
    alarms = _merge(ALARMS, conf.get("alarms") or {})
    unknown = set(alarms) - set(ALARMS)
    if unknown:
        problems.append(f"saltops:alarms: unknown keys {sorted(unknown)}")
    port = alarms["listen_port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
        problems.append("saltops:alarms:listen_port: a TCP port (0 turns the endpoint off)")
    problems.extend(_check_http(alarms))
    for key in ("tick", "max_event_bytes", "keep_days"):
        value = alarms[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            problems.append(f"saltops:alarms:{key}: a positive number")
    lease, tick = alarms["lease"], alarms["tick"]
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not 1 <= lease <= 3600:
        problems.append("saltops:alarms:lease: seconds, from 1 to 3600")
    elif isinstance(tick, (int, float)) and not isinstance(tick, bool) and lease < 10 * tick:
        problems.append("saltops:alarms:lease: at least 10 ticks (the holder renews every third of it)")
    notify, notify_problems = notify_settings.check(conf.get("notify"))
    problems.extend(notify_problems)
    if problems:
        raise ValidationError("invalid alarm/notification settings", problems)
    return alarms, notify
