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
    """A period as ranges of whole weeks (their Mondays) plus ranges of the days outside.

    Ranges are inclusive ``(first, last)`` pairs, in order, adjacent ones merged: a read
    is one index range per pair.
    """

    weeks: tuple[tuple[date, date], ...]
    days: tuple[tuple[date, date], ...]


def _merged(ranges: list[tuple[date, date]], step: timedelta) -> tuple[tuple[date, date], ...]:
    out: list[tuple[date, date]] = []
    for first, last in sorted(ranges):
        if out and out[-1][1] + step >= first:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return tuple(out)


def _parts(start: date, end: date) -> tuple[list, list]:
    first = start + timedelta(days=-start.weekday() % 7)  # first Monday on or after start
    last = end - timedelta(days=(end.weekday() + 1) % 7)  # last Sunday on or before end
    if last < first:  # no whole week inside
        return [], [(start, end)] if start <= end else []
    weeks = [(first, last - timedelta(days=6))]
    days = [
        (a, b) for a, b in ((start, first - timedelta(days=1)), (last + timedelta(days=1), end))
    ]
    return weeks, [(a, b) for a, b in days if a <= b]


def split(start: date, end: date) -> Split:
    """Return the whole weeks inside ``[start, end]`` and the days left at its ends."""
    return split_all([(start, end)])


def split_all(periods: list[tuple[date, date]]) -> Split:
    """Split several disjoint periods; a week never straddles two of them."""
    weeks, days = [], []
    for start, end in periods:
        w, d = _parts(start, end)
        weeks += w
        days += d
    return Split(_merged(weeks, timedelta(days=7)), _merged(days, timedelta(days=1)))
