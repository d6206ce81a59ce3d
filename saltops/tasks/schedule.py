"""When a task fires: cron expressions (croniter), fixed intervals and one-off times.

Times are POSIX seconds (UTC) everywhere outside this module.  A cron
expression is read in the task's time zone (``zoneinfo``), so ``0 2 * * *``
in ``Asia/Shanghai`` fires at 02:00 Shanghai time, and a day that skips or
repeats an hour (daylight saving) follows croniter's handling of that zone.
An interval counts from its anchor (the definition time, or ``start``), not
from when the previous run ended, so runs do not drift.
"""

import datetime
import math
import zoneinfo

from croniter import croniter

from saltops.durations import parse_duration

KINDS = ("cron", "interval", "once")
MIN_INTERVAL = 1.0


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message says why."""


def zone(name):
    """The ``ZoneInfo`` for ``name`` (``UTC`` when empty), or :class:`ScheduleError`."""
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleError(f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai or UTC)") from None


def parse_time(value, tz_name):
    """A one-off time (``2026-12-03 02:00``, ISO 8601, or POSIX seconds) as POSIX seconds.

    A time without an offset is read in ``tz_name``.
    """
    if isinstance(value, bool):
        raise ScheduleError(f"{value!r} is not a time")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime.datetime):
        moment = value
    else:
        try:
            moment = datetime.datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ScheduleError(f"{value!r} is not a time (use e.g. 2026-12-03 02:00 or 2026-12-03T02:00:00+08:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(tz_name))
    return moment.timestamp()


class Schedule:
    """One task's schedule; :meth:`next_after` gives its fire times."""

    __slots__ = ("anchor", "expr", "kind", "tz")

    def __init__(self, kind, expr, tz="UTC", anchor=0.0):
        self.kind = kind
        self.expr = expr
        self.tz = tz or "UTC"
        self.anchor = float(anchor or 0.0)

    @classmethod
    def parse(cls, kind, expr, tz="UTC", anchor=0.0):
        """Check and normalise a schedule; raise :class:`ScheduleError` with the reason."""
        zone(tz)
        if kind == "cron":
            text = " ".join(str(expr or "").split())
            fields = len(text.split(" ")) if text else 0
            if fields != 5:
                raise ScheduleError(f"cron expression {expr!r} must have 5 fields (minute hour day month weekday)")
            if not croniter.is_valid(text):
                raise ScheduleError(f"cron expression {expr!r} is not valid")
            return cls("cron", text, tz, anchor)
        if kind == "interval":
            try:
                seconds = parse_duration(expr, "interval")
            except ValueError as err:
                raise ScheduleError(str(err)) from None
            if seconds < MIN_INTERVAL:
                raise ScheduleError(f"interval {expr!r} is shorter than {MIN_INTERVAL:g} s")
            return cls("interval", repr(seconds), tz, anchor)
        if kind == "once":
            return cls("once", repr(parse_time(expr, tz)), tz, anchor)
        raise ScheduleError(f"schedule kind {kind!r} is not one of {', '.join(KINDS)}")

    def next_after(self, now):
        """The first fire time strictly after ``now`` (POSIX seconds), or None (a one-off in the past)."""
        if self.kind == "once":
            at = float(self.expr)
            return at if at > now else None
        if self.kind == "interval":
            step = float(self.expr)
            if now < self.anchor:
                return self.anchor
            return self.anchor + (math.floor((now - self.anchor) / step) + 1) * step
        start = datetime.datetime.fromtimestamp(now, zone(self.tz))
        return croniter(self.expr, start).get_next(float)

    def describe(self):
        if self.kind == "interval":
            return f"every {float(self.expr):g}s"
        if self.kind == "once":
            return "once at " + datetime.datetime.fromtimestamp(float(self.expr), zone(self.tz)).isoformat()
        return f"cron {self.expr} ({self.tz})"
