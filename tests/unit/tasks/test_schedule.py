"""Fire times: cron in a time zone, intervals from their anchor, one-off times."""

import datetime
import zoneinfo

import pytest

from saltops.tasks.schedule import Schedule, ScheduleError, parse_time

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def ts(*parts, tz=datetime.timezone.utc):
    return datetime.datetime(*parts, tzinfo=tz).timestamp()


def test_cron_fires_at_the_local_time_of_its_zone():
    schedule = Schedule.parse("cron", "0 2 * * *", "Asia/Shanghai")
    # 2026-12-02 10:00 UTC is 18:00 in Shanghai: next 02:00 Shanghai is 2026-12-02 18:00 UTC.
    assert schedule.next_after(ts(2026, 12, 2, 10, 0)) == ts(2026, 12, 3, 2, 0, tz=SHANGHAI)
    assert schedule.next_after(ts(2026, 12, 3, 2, 0, tz=SHANGHAI)) == ts(2026, 12, 4, 2, 0, tz=SHANGHAI)


def test_cron_every_five_minutes_is_strictly_after_now():
    schedule = Schedule.parse("cron", "*/5  *   * * *")
    assert schedule.expr == "*/5 * * * *"
    assert schedule.next_after(ts(2026, 1, 1, 0, 5)) == ts(2026, 1, 1, 0, 10)
    assert schedule.next_after(ts(2026, 1, 1, 0, 5, 1)) == ts(2026, 1, 1, 0, 10)


def test_cron_follows_daylight_saving_time():
    schedule = Schedule.parse("cron", "30 1 * * *", "Europe/Berlin")
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    before = ts(2026, 3, 28, 12, 0, tz=berlin)
    first = schedule.next_after(before)
    second = schedule.next_after(first)
    assert first == ts(2026, 3, 29, 1, 30, tz=berlin)
    # The night the clocks move forward has 23 hours: the next run is 23 hours later in UTC.
    assert second - first == 23 * 3600


@pytest.mark.parametrize("expr", ["* * * *", "61 * * * *", "not cron at all", "* * * * * *", ""])
def test_bad_cron_is_refused(expr):
    with pytest.raises(ScheduleError, match="cron expression"):
        Schedule.parse("cron", expr)


def test_interval_counts_from_its_anchor_without_drift():
    schedule = Schedule.parse("interval", "10m", anchor=1000.0)
    assert schedule.next_after(1000.0) == 1600.0
    assert schedule.next_after(1599.9) == 1600.0
    assert schedule.next_after(1600.0) == 2200.0
    # After a long pause the next time stays on the anchor's grid.
    assert schedule.next_after(100000.0) == 1000.0 + 166 * 600.0


@pytest.mark.parametrize("expr,message", [("0.5s", "shorter"), ("soon", "not a duration"), (-3, "negative")])
def test_bad_interval_is_refused(expr, message):
    with pytest.raises(ScheduleError, match=message):
        Schedule.parse("interval", expr)


def test_one_off_reads_a_naive_time_in_the_task_zone_and_fires_once():
    schedule = Schedule.parse("once", "2026-12-03 02:00", "Asia/Shanghai")
    at = ts(2026, 12, 3, 2, 0, tz=SHANGHAI)
    assert schedule.next_after(at - 1) == at
    assert schedule.next_after(at) is None
    assert parse_time("2026-12-03T02:00:00+00:00", "Asia/Shanghai") == ts(2026, 12, 3, 2, 0)


def test_unknown_zone_and_kind_are_refused():
    with pytest.raises(ScheduleError, match="unknown time zone"):
        Schedule.parse("cron", "* * * * *", "Mars/Olympus")
    with pytest.raises(ScheduleError, match="schedule kind"):
        Schedule.parse("weekly", "monday")
    with pytest.raises(ScheduleError, match="not a time"):
        Schedule.parse("once", "tomorrow-ish")
