"""The ``saltops:notify`` settings, with their defaults and checks."""

import copy

from saltops.durations import parse_duration
from saltops.notify import registry

NOTIFY = {
    "channels": {},
    "timeout": 10,
    "workers": 4,
    "retry": {"max_attempts": 10, "backoff": "5s", "max_backoff": "10m"},
    # How long an attempt may stay claimed before its outcome counts as lost: a process that
    # stopped between claiming and recording leaves its row to be tried again after this.
    "claim_timeout": "2m",
}


def _merge(base, over):
    """``base`` updated by ``over``, nested mappings merged key by key (neither is changed)."""
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def check(section):
    """``(settings, problems)`` for a ``saltops:notify`` mapping: defaults filled in, durations in seconds."""
    problems = []
    if section is not None and not isinstance(section, dict):
        return copy.deepcopy(NOTIFY), ["saltops:notify: a mapping"]
    notify = _merge(NOTIFY, section or {})
    unknown = set(notify) - set(NOTIFY)
    if unknown:
        problems.append(f"saltops:notify: unknown keys {sorted(unknown)}")
    retry = notify["retry"]
    if not isinstance(retry, dict):
        problems.append("saltops:notify:retry: a mapping of max_attempts, backoff, max_backoff")
        retry = notify["retry"] = copy.deepcopy(NOTIFY["retry"])
    for key in ("backoff", "max_backoff"):
        try:
            retry[key] = parse_duration(retry[key], f"saltops:notify:retry:{key}")
        except ValueError as err:
            problems.append(str(err))
    if isinstance(retry.get("max_attempts"), bool) or not isinstance(retry.get("max_attempts"), int) \
            or retry["max_attempts"] < 1:
        problems.append("saltops:notify:retry:max_attempts: a whole number >= 1")
    if isinstance(notify["workers"], bool) or not isinstance(notify["workers"], int) or notify["workers"] < 1:
        problems.append("saltops:notify:workers: a whole number >= 1")
    timeout = notify["timeout"]
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        problems.append("saltops:notify:timeout: a positive number of seconds")
    try:
        notify["claim_timeout"] = parse_duration(notify["claim_timeout"], "saltops:notify:claim_timeout")
    except ValueError as err:
        problems.append(str(err))
    problems.extend(registry.check(notify["channels"]))
    if not problems:
        problems.extend(_claim_outlasts_sends(notify))
    return notify, problems


def _claim_outlasts_sends(notify):
    """A claim must outlast the slowest send, or a second worker could take a row still being sent.

    An SMTP delivery makes several round trips (connect, EHLO, STARTTLS, login,
    DATA), each with the channel's timeout, hence the factor.
    """
    longest = max([float(spec.get("timeout", notify["timeout"])) for spec in notify["channels"].values()]
                  or [float(notify["timeout"])])
    if notify["claim_timeout"] < 6 * longest:
        return [f"saltops:notify:claim_timeout: {notify['claim_timeout']:g}s is shorter than 6 x the longest "
                f"channel timeout ({longest:g}s); make it at least {6 * longest:g}s"]
    return []
