"""Working time: adding and measuring it across nights, weekends, holidays and DST."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.playbook import Calendar, add_working_time, calendar_for, load_playbook, working_seconds
from tests.unit.playbook.helpers import playbook_text

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
CAL = Calendar("Asia/Shanghai", ["mon", "tue", "wed", "thu", "fri"], ("09:00", "18:00"))


def sh(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


@pytest.mark.parametrize(
    "start,duration,expected",
    [
        ("2026-11-23 10:00", hours(2), "2026-11-23 12:00"),  # Monday, same day
        ("2026-11-23 10:00", hours(8), "2026-11-23 18:00"),  # ends exactly at closing
        ("2026-11-23 17:00", hours(2), "2026-11-24 10:00"),  # over the night
        ("2026-11-20 17:00", hours(2), "2026-11-23 10:00"),  # Friday, over the weekend
        ("2026-11-20 17:00", hours(24), "2026-11-25 14:00"),  # 1 + 9 + 9 + 5
        ("2026-11-23 07:30", hours(1), "2026-11-23 10:00"),  # before opening
        ("2026-11-23 20:00", hours(1), "2026-11-24 10:00"),  # after closing
        ("2026-11-22 12:00", hours(1), "2026-11-23 10:00"),  # on a Sunday
        ("2026-11-23 10:00", timedelta(minutes=90, seconds=1), "2026-11-23 11:30:01"),
    ],
)
def test_adding_working_time_skips_nights_and_weekends(start, duration, expected):
    assert add_working_time(sh(start), duration, CAL) == sh(expected)


def test_adding_working_time_skips_holidays_and_uses_make_up_working_days():
    cal = Calendar(
        holidays=[date(2026, 10, 1) + timedelta(days=i) for i in range(7)],
        extra_workdays=["2026-10-10"],
    )
    # Wednesday 30 Sep: 1 h; Thu 8 and Fri 9 Oct: 18 h; Saturday 10 Oct is worked: 5 h.
    assert add_working_time(sh("2026-09-30 17:00"), hours(24), cal) == sh("2026-10-10 14:00")
    assert working_seconds(sh("2026-09-30 17:00"), sh("2026-10-10 14:00"), cal) == 24 * 3600


def test_zero_duration_is_the_start_itself_and_a_negative_one_is_refused():
    assert add_working_time(sh("2026-11-22 12:00"), timedelta(0), CAL) == sh("2026-11-22 12:00")
    with pytest.raises(ValueError, match="negative"):
        add_working_time(sh("2026-11-23 10:00"), hours(-1), CAL)


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="UTC offset"):
        add_working_time(datetime(2026, 11, 23, 10), hours(1), CAL)
    with pytest.raises(ValueError, match="UTC offset"):
        working_seconds(datetime(2026, 11, 23, 10), sh("2026-11-24 10:00"), CAL)


def test_the_result_is_in_the_calendars_time_zone_whatever_the_start_zone():
    start = datetime(2026, 11, 23, 2, 0, tzinfo=ZoneInfo("UTC"))  # 10:00 in Shanghai
    result = add_working_time(start, hours(1), CAL)
    assert result.tzinfo == SHANGHAI
    assert result == sh("2026-11-23 11:00")


def test_working_seconds_over_a_week_and_backwards():
    assert working_seconds(sh("2026-11-20 17:00"), sh("2026-11-23 10:00"), CAL) == 2 * 3600
    assert working_seconds(sh("2026-11-23 00:00"), sh("2026-11-30 00:00"), CAL) == 45 * 3600
    assert working_seconds(sh("2026-11-23 12:00"), sh("2026-11-23 11:00"), CAL) == 0.0
    assert working_seconds(sh("2026-11-21 09:00"), sh("2026-11-22 18:00"), CAL) == 0.0


def test_dst_days_are_as_long_as_they_really_are():
    night = Calendar("America/New_York", range(7), ("01:00", "04:00"))
    spring = datetime(2026, 3, 8, tzinfo=NEW_YORK)  # 02:00 -> 03:00
    autumn = datetime(2026, 11, 1, tzinfo=NEW_YORK)  # 02:00 -> 01:00
    assert working_seconds(spring, spring + hours(24), night) == 2 * 3600
    assert working_seconds(autumn, autumn + hours(24), night) == 4 * 3600
    assert add_working_time(spring.replace(hour=1), hours(2), night) == spring.replace(hour=4)
    finish = add_working_time(autumn.replace(hour=1), hours(3), night)
    assert finish.astimezone(ZoneInfo("UTC")) == datetime(2026, 11, 1, 8, tzinfo=ZoneInfo("UTC"))


def test_a_calendar_normalises_its_fields_and_refuses_nonsense():
    cal = Calendar("Europe/Berlin", ["Mon", 1], (time(8), "17:30"), ["2026-12-25"])
    assert cal.workdays == frozenset({0, 1})
    assert cal.hours == (time(8), time(17, 30))
    assert cal.holidays == frozenset({date(2026, 12, 25)})
    with pytest.raises(ValueError, match="time zone"):
        Calendar("Mars/Olympus")
    with pytest.raises(ValueError, match="start before"):
        Calendar(hours=("18:00", "09:00"))
    with pytest.raises(ValueError, match="day of the week"):
        Calendar(workdays=["someday"])
    with pytest.raises(ValueError, match="at least one working day"):
        Calendar(workdays=[])
    with pytest.raises(ValueError, match="both a holiday"):
        Calendar(holidays=["2026-10-10"], extra_workdays=["2026-10-10"])


def test_a_calendar_without_working_days_in_reach_gives_up():
    cal = Calendar(workdays=[], extra_workdays=["2026-01-05"])
    with pytest.raises(ValueError, match="no end of working time"):
        add_working_time(sh("2026-02-01 10:00"), hours(1), cal)


def test_a_branch_calendar_wins_over_its_region_and_the_region_over_the_default():
    playbook = load_playbook(
        playbook_text(
            extra=(
                "calendars:\n"
                "  default: {holidays: ['2026-10-01']}\n"
                "  EAST: {hours: ['08:30', '17:30']}\n"
                "  SH01: {timezone: Asia/Tokyo}\n"
                "  NO: {workdays: [mon]}\n"
            )
        )
    )
    default, east, branch = (playbook.calendars[c] for c in ("default", "EAST", "SH01"))
    assert calendar_for(playbook, ["SH01", "EAST", "HQ"]) is branch
    assert calendar_for(playbook, ["SH02", "EAST", "HQ"]) is east
    assert calendar_for(playbook, ["XX01", "WEST", "HQ"]) is default
    assert calendar_for(playbook, ["NO"]).workdays == frozenset({0})
    # Fields left out are the default's.
    assert east.holidays == default.holidays == frozenset({date(2026, 10, 1)})
    assert east.timezone == "Asia/Shanghai"
    assert branch.hours == (time(9), time(18))


CALENDARS = st.sampled_from(
    [
        CAL,
        Calendar("America/New_York", range(7), ("01:00", "04:00")),
        Calendar("Europe/London", [0, 2, 4], ("08:00", "12:30"), ["2026-03-30"], ["2026-03-28"]),
        Calendar("Asia/Kolkata", range(6), ("09:30", "18:45")),
    ]
)
STARTS = st.datetimes(
    min_value=datetime(2026, 1, 1),
    max_value=datetime(2027, 12, 31),
    timezones=st.sampled_from([SHANGHAI, NEW_YORK, ZoneInfo("UTC")]),
)
DURATIONS = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=400))


@given(cal=CALENDARS, start=STARTS, duration=DURATIONS)
def test_working_seconds_measure_back_what_was_added(cal, start, duration):
    end = add_working_time(start, duration, cal)
    assert end >= start
    assert working_seconds(start, end, cal) == duration.total_seconds()


@given(cal=CALENDARS, start=STARTS, a=DURATIONS, b=DURATIONS)
def test_adding_more_working_time_never_ends_earlier(cal, start, a, b):
    shorter, longer = sorted([a, b])
    assert add_working_time(start, shorter, cal) <= add_working_time(start, longer, cal)


@given(cal=CALENDARS, start=STARTS, a=DURATIONS, b=DURATIONS)
def test_adding_in_two_steps_is_adding_the_sum(cal, start, a, b):
    two_steps = add_working_time(add_working_time(start, a, cal), b, cal)
    assert two_steps == add_working_time(start, a + b, cal)
