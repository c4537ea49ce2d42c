"""Phased targets: monthly phases, windows pro rata by day, attainment and run rate."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hq_server.metrics.targets import attainment, phased_target, phases


def test_a_yearly_target_follows_its_monthly_distribution():
    dist = [5, 5, 10, 10, 10, 10, 5, 5, 10, 10, 10, 10]
    monthly = phases(1200.0, "year", date(2026, 1, 1), dist)
    assert monthly[date(2026, 1, 1)] == 60.0 and monthly[date(2026, 3, 1)] == 120.0
    assert phased_target(monthly, date(2026, 1, 1), date(2026, 12, 31)) == pytest.approx(1200)
    # Half of November (15 of 30 days) of a 120 month.
    assert phased_target(monthly, date(2026, 11, 1), date(2026, 11, 15)) == pytest.approx(60)


def test_a_bad_distribution_is_refused():
    with pytest.raises(ValueError, match="3 percentages summing to 100"):
        phases(100.0, "quarter", date(2026, 1, 1), [50, 50])


@given(st.floats(0, 1e9), st.integers(1, 28), st.integers(0, 364))
def test_windows_add_up_to_the_whole(value, split_day, offset):
    monthly = phases(value, "year", date(2026, 1, 1), None)
    cut = date.fromordinal(date(2026, 1, 1).toordinal() + offset)
    first = phased_target(monthly, date(2026, 1, 1), cut)
    rest = phased_target(monthly, date.fromordinal(cut.toordinal() + 1), date(2026, 12, 31))
    assert first + rest == pytest.approx(value, rel=1e-9, abs=1e-6)


def test_attainment_and_run_rate_projection():
    result = attainment(50.0, 200.0, date(2026, 11, 1), date(2026, 11, 30), date(2026, 11, 10))
    assert result["attainment"] == 0.25 and result["variance"] == -150.0
    assert result["run_rate_projection"] == pytest.approx(150.0)  # 50 in 10 days x 30 days
    assert result["projected_attainment"] == pytest.approx(0.75)
