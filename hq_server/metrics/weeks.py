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


def week_of(day: date) -> date:
    """The week of ``day`` as ``WEEK_OF`` gives it in SQL: its Monday."""
    return day - timedelta(days=day.weekday())


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


@dataclass(frozen=True)
class Split:
    """A period as ranges of whole weeks (their Mondays) plus ranges of the days outside.

    Ranges are inclusive ``(first, last)`` pairs, in order: a read is one index range per
    pair. There is at most one range of weeks and one range of days at each end.
    """

    weeks: tuple[tuple[date, date], ...]
    days: tuple[tuple[date, date], ...]


def split(start: date, end: date) -> Split:
    """Return the whole weeks inside ``[start, end]`` and the days left at its ends."""
    first = start + timedelta(days=-start.weekday() % 7)  # first Monday on or after start
    last = end - timedelta(days=(end.weekday() + 1) % 7)  # last Sunday on or before end
    if last < first:  # no whole week inside
        return Split((), ((start, end),) if start <= end else ())
    ends = ((start, first - timedelta(days=1)), (last + timedelta(days=1), end))
    return Split(((first, last - timedelta(days=6)),), tuple((a, b) for a, b in ends if a <= b))
