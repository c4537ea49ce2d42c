"""SLA status, quota shortfall, stalled deals, period bounds and the version in force."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.playbook import (
    Calendar,
    is_stalled,
    load_playbook,
    period_bounds,
    quota_shortfall,
    sla_status,
    version_in_force,
    week_bounds,
)
from tests.unit.playbook.helpers import THRESHOLD, playbook_text

SHANGHAI = ZoneInfo("Asia/Shanghai")
CAL = Calendar()
MONDAY_10 = datetime(2026, 11, 23, 10, tzinfo=SHANGHAI)
DUE = datetime(2026, 11, 24, 10, tzinfo=SHANGHAI)  # 9 working hours later


def test_an_sla_is_due_until_its_deadline_passes_without_a_response():
    assert sla_status(MONDAY_10, None, MONDAY_10, timedelta(hours=9), CAL) == ("due", DUE, None)
    assert sla_status(MONDAY_10, None, DUE, timedelta(hours=9), CAL) == ("due", DUE, None)


def test_an_sla_without_a_response_fails_after_its_deadline_by_working_seconds():
    late = datetime(2026, 11, 25, 9, 30, tzinfo=SHANGHAI)  # 8 h + 30 min of working time
    assert sla_status(MONDAY_10, None, late, timedelta(hours=9), CAL) == (
        "failed",
        DUE,
        8.5 * 3600,
    )


def test_a_response_in_time_meets_the_sla_whenever_it_is_checked():
    answered = DUE - timedelta(minutes=1)
    far_later = DUE + timedelta(days=30)
    assert sla_status(MONDAY_10, answered, far_later, timedelta(hours=9), CAL) == (
        "met",
        DUE,
        None,
    )
    assert sla_status(MONDAY_10, DUE, far_later, timedelta(hours=9), CAL)[0] == "met"


def test_a_late_response_fails_even_outside_working_hours():
    evening = datetime(2026, 11, 24, 20, tzinfo=SHANGHAI)
    status, due, lateness = sla_status(MONDAY_10, evening, evening, timedelta(hours=9), CAL)
    assert (status, due, lateness) == ("failed", DUE, 8 * 3600)


def test_without_a_calendar_an_sla_runs_on_the_wall_clock():
    result = sla_status(MONDAY_10, None, MONDAY_10 + timedelta(hours=3), timedelta(hours=2), None)
    assert result == ("failed", MONDAY_10 + timedelta(hours=2), 3600.0)


@given(
    start=st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31), timezones=st.just(SHANGHAI)),
    within=st.timedeltas(timedelta(minutes=1), timedelta(hours=100)),
    after=st.timedeltas(timedelta(0), timedelta(days=30)),
    answered=st.none() | st.timedeltas(timedelta(0), timedelta(days=30)),
)
def test_an_sla_status_is_consistent_with_its_deadline(start, within, after, answered):
    now = start + after
    response = None if answered is None else start + answered
    status, due, lateness = sla_status(start, response, now, within, CAL)
    if status == "due":
        assert response is None and now <= due and lateness is None
    elif status == "met":
        assert response is not None and response <= due and lateness is None
    else:
        assert due < (response or now) and lateness >= 0


@pytest.mark.parametrize("count,minimum,short", [(0, 10, 10), (7, 10, 3), (10, 10, 0), (12, 10, 0)])
def test_the_quota_shortfall_is_never_negative(count, minimum, short):
    assert quota_shortfall(count, minimum) == short


def test_a_deal_stalls_after_exactly_its_days():
    last = datetime(2026, 11, 1, 10, tzinfo=SHANGHAI)
    assert not is_stalled(last, last + timedelta(days=14) - timedelta(seconds=1), 14)
    assert is_stalled(last, last + timedelta(days=14), 14)
    assert is_stalled(last.astimezone(UTC), last + timedelta(days=20), 14)


@pytest.mark.parametrize(
    "day", [date(2026, 11, 23), date(2026, 11, 26), date(2026, 11, 29)]
)  # Mon, Thu, Sun
def test_a_week_runs_from_local_monday_midnight_to_the_next(day):
    start, end = week_bounds(day, "Asia/Shanghai")
    assert start == datetime(2026, 11, 23, tzinfo=SHANGHAI)
    assert end == datetime(2026, 11, 30, tzinfo=SHANGHAI)
    assert start.astimezone(UTC) == datetime(2026, 11, 22, 16, tzinfo=UTC)


def test_a_week_with_a_dst_change_is_an_hour_short():
    start, end = week_bounds(date(2026, 3, 5), ZoneInfo("America/New_York"))  # DST began Sun 8 Mar
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(days=7, hours=-1)


def test_a_new_year_week_belongs_to_its_iso_week():
    start, end = week_bounds(date(2027, 1, 1), "Asia/Shanghai")
    assert (start.date(), end.date()) == (date(2026, 12, 28), date(2027, 1, 4))


def test_day_and_month_periods_are_local_too():
    assert period_bounds(date(2026, 12, 15), "month", "Asia/Shanghai") == (
        datetime(2026, 12, 1, tzinfo=SHANGHAI),
        datetime(2027, 1, 1, tzinfo=SHANGHAI),
    )
    assert period_bounds(date(2026, 2, 28), "day", SHANGHAI) == (
        datetime(2026, 2, 28, tzinfo=SHANGHAI),
        datetime(2026, 3, 1, tzinfo=SHANGHAI),
    )
    with pytest.raises(ValueError, match="period"):
        period_bounds(date(2026, 2, 28), "fortnight", SHANGHAI)


def _version(n: int):
    return load_playbook(playbook_text(THRESHOLD).replace("version: 3", f"version: {n}"))


V1, V2, V3 = _version(1), _version(2), _version(3)
T1 = datetime(2026, 1, 1, tzinfo=UTC)
T2 = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "when,expected",
    [
        (T1 - timedelta(seconds=1), None),
        (T1, V1),
        (T2 - timedelta(microseconds=1), V1),
        (T2, V3),  # v2 and v3 published at the same moment: the higher wins
        (datetime(2030, 1, 1, tzinfo=SHANGHAI), V3),
    ],
)
def test_an_event_is_judged_by_the_version_in_force_when_it_occurred(when, expected):
    published = [(T2, V3), (T1, V1), (T2, V2)]
    assert version_in_force(published, when) is expected
    assert version_in_force(reversed(published), when) is expected
