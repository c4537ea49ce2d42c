"""A period split into whole weeks and end days covers each of its days exactly once."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hq_server.metrics.weeks import split


def _days(first: date, last: date, step: int = 1) -> list[date]:
    return [first + timedelta(days=i) for i in range(0, (last - first).days + 1, step)]


def _covered(parts) -> list[date]:
    out = []
    for first, last in parts.days:
        out += _days(first, last)
    for first, last in parts.weeks:
        for monday in _days(first, last, 7):
            assert monday.weekday() == 0
            out += _days(monday, monday + timedelta(days=6))
    return sorted(out)


starts = st.dates(min_value=date(2024, 1, 1), max_value=date(2027, 12, 31))


@given(start=starts, length=st.integers(0, 400))
def test_weeks_and_end_days_cover_the_period_once(start, length):
    end = start + timedelta(days=length)
    parts = split(start, end)
    assert _covered(parts) == _days(start, end)
    # Only the ends are read day by day: fewer than a week at each.
    assert sum((last - first).days + 1 for first, last in parts.days) <= 12


def test_a_period_shorter_than_its_first_whole_week_is_read_by_day():
    assert split(date(2026, 11, 5), date(2026, 11, 8)).weeks == ()  # Thursday to Sunday
    assert split(date(2026, 11, 2), date(2026, 11, 8)).days == ()  # Monday to Sunday
