"""Durations as people write them in settings and rules: ``90``, ``"90s"``, ``"1m30s"``, ``"2h"``.

Shared by the alarm rules, the alarm runner and the notification settings,
so it lives outside both packages.
"""

import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value, where="duration"):
    """``90``, ``"90s"``, ``"1m30s"``, ``"2h"`` -> seconds (float); ValueError names ``where``."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: {value!r} is not a duration")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{where}: a duration cannot be negative")
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: {value!r} is not a duration (use e.g. 30s, 5m, 1h)")
    text = value.strip()
    pos = 0
    total = 0.0
    for found in _DURATION.finditer(text):
        if found.start() != pos:
            break
        total += float(found.group(1)) * _UNITS[found.group(2)]
        pos = found.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"{where}: {value!r} is not a duration (use e.g. 30s, 5m, 1h)")
    return total
