"""Phased targets: a yearly (or quarterly) target spread over months, read for any window."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from hq_server.metrics.funnel import ratio

MONTHS = {"year": 12, "quarter": 3, "month": 1}


def months_of(kind: str, start: date) -> list[date]:
    """Return the first day of each month the target period covers."""
    firsts, day = [], start.replace(day=1)
    for _ in range(MONTHS[kind]):
        firsts.append(day)
        day = (day + timedelta(days=32)).replace(day=1)
    return firsts


def phases(value: float, kind: str, start: date, distribution: list[float] | None) -> dict:
    """Return the target of each month: ``T_month = T × dist% / 100`` (equal split by default)."""
    firsts = months_of(kind, start)
    shares = distribution or [100 / len(firsts)] * len(firsts)
    if len(shares) != len(firsts) or abs(sum(shares) - 100) > 0.01:
        raise ValueError(f"the distribution needs {len(firsts)} percentages summing to 100")
    return {first: value * share / 100 for first, share in zip(firsts, shares, strict=True)}


def _month_days(first: date) -> int:
    return calendar.monthrange(first.year, first.month)[1]


def phased_target(monthly: dict[date, float], window_start: date, window_end: date) -> float:
    """Return the part of the target that falls in [window_start, window_end], pro rata by day."""
    total = 0.0
    for first, amount in monthly.items():
        last = first + timedelta(days=_month_days(first) - 1)
        lo, hi = max(first, window_start), min(last, window_end)
        if lo <= hi:
            total += amount * ((hi - lo).days + 1) / _month_days(first)
    return total


def attainment(
    achieved: float, target: float, window_start: date, window_end: date, today: date
) -> dict[str, float | None]:
    """Return attainment, variance, and the run-rate projection to the end of the window."""
    elapsed = (min(today, window_end) - window_start).days + 1
    length = (window_end - window_start).days + 1
    projected = achieved * length / elapsed if elapsed > 0 else None
    return {
        "target": target,
        "achieved": achieved,
        "variance": achieved - target,
        "attainment": ratio(achieved, target),
        "run_rate_projection": projected,
        "projected_attainment": ratio(projected, target) if projected is not None else None,
    }
