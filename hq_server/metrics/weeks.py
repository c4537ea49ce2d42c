"""Weeks of local days: how a period splits into whole weeks and the days at its ends.

``weekly_rollups`` and ``weekly_unit_rollups`` hold the daily rollups summed per week
(Monday to Sunday, PostgreSQL's ``date_trunc('week', day)``). A report over a period
reads the weekly rows of the weeks that lie wholly inside it and the daily rows of the
days left over at its ends: a 30-day period is 4 weekly rows and 2 daily ones per
metric instead of 30.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from hq_server.metrics.deal_rollups import CURRENT_DAY

WEEK_OF = "date_trunc('week', {})::date"

# The weekly tables as sums of the daily ones (the open-deal counters of CURRENT_DAY,
# which describe now rather than a day, are not summed into a week).
FILL_WEEKLY = (
    "INSERT INTO weekly_rollups (branch_id, week, rep_id, metric, value) "
    "SELECT branch_id, date_trunc('week', day)::date, rep_id, metric, sum(value) "
    f"FROM daily_rollups WHERE day <> DATE '{CURRENT_DAY}' GROUP BY 1, 2, 3, 4"
)
FILL_WEEKLY_UNITS = (
    "INSERT INTO weekly_unit_rollups (unit_id, week, metric, stripe, value) "
    "SELECT unit_id, date_trunc('week', day)::date, metric, stripe, sum(value) "
    f"FROM unit_rollups WHERE day <> DATE '{CURRENT_DAY}' GROUP BY 1, 2, 3, 4"
)


def week_of(day: date) -> date:
    """Return the Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True)
class Split:
    """A period as whole weeks (their Mondays) plus the days outside them."""

    weeks: tuple[date, ...]
    days: tuple[date, ...]


def split(start: date, end: date) -> Split:
    """Return the whole weeks inside ``[start, end]`` and the days left at its ends."""
    first = start + timedelta(days=-start.weekday() % 7)  # first Monday on or after start
    weeks = []
    monday = first
    while monday + timedelta(days=6) <= end:
        weeks.append(monday)
        monday += timedelta(days=7)
    covered_to = weeks[-1] + timedelta(days=6) if weeks else None
    days = []
    day = start
    while day <= end:
        if not weeks or day < first or day > covered_to:
            days.append(day)
        day += timedelta(days=1)
    return Split(tuple(weeks), tuple(days))


def split_all(periods: list[tuple[date, date]]) -> Split:
    """Split several disjoint periods; a week never straddles two of them."""
    parts = [split(start, end) for start, end in periods]
    return Split(tuple(w for p in parts for w in p.weeks), tuple(d for p in parts for d in p.days))
