"""Timer rules as arithmetic: SLA status, quota shortfall, stalled deals, period bounds.

HQ's scheduled jobs call these with what they read from the event log; the
agent calls them to show a rep the clock on a lead. Nothing here reads the clock:
``now`` is always an argument.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from typing import Literal

from shared.playbook.calendar import Calendar, add_working_time, working_seconds, zone

SlaStatus = Literal["due", "met", "failed"]
PERIODS = ("day", "week", "month")


def sla_status(
    start_at: datetime,
    first_response_at: datetime | None,
    now: datetime,
    within: timedelta,
    cal: Calendar | None,
) -> tuple[SlaStatus, datetime, float | None]:
    """Return ``(status, response_by, lateness_seconds)`` of one SLA clock.

    ``due``: no response yet and ``now`` is not past ``response_by``. ``failed``:
    ``response_by`` is before the response (or before ``now`` when there is
    none); lateness is then the working seconds between the two (wall-clock
    seconds without a calendar). ``met`` otherwise, with lateness ``None``.
    """
    if cal is None:
        response_by = start_at + within
    else:
        response_by = add_working_time(start_at, within, cal)
    if first_response_at is None and now <= response_by:
        return "due", response_by, None
    reference = first_response_at or now
    if response_by < reference:
        if cal is None:
            return "failed", response_by, (reference - response_by).total_seconds()
        return "failed", response_by, working_seconds(response_by, reference, cal)
    return "met", response_by, None


def quota_shortfall(count: int, minimum: int) -> int:
    """Return how many are missing to reach ``minimum`` (0 when it is reached)."""
    return max(0, minimum - count)


def is_stalled(last_activity_at: datetime, now: datetime, days: int) -> bool:
    """Tell whether ``days`` full days have passed since the last activity."""
    return now - last_activity_at >= timedelta(days=days)


def week_bounds(day: date, tz: str | tzinfo) -> tuple[datetime, datetime]:
    """Return the ISO week holding ``day`` as ``[Monday 00:00, next Monday 00:00)`` local."""
    monday = day - timedelta(days=day.weekday())
    return _midnight(monday, tz), _midnight(monday + timedelta(days=7), tz)


def period_bounds(day: date, period: str, tz: str | tzinfo) -> tuple[datetime, datetime]:
    """Return the local ``day``, ISO ``week`` or calendar ``month`` holding ``day``."""
    if period == "day":
        return _midnight(day, tz), _midnight(day + timedelta(days=1), tz)
    if period == "week":
        return week_bounds(day, tz)
    if period == "month":
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return _midnight(first, tz), _midnight(following, tz)
    raise ValueError(f"period must be one of {', '.join(PERIODS)}")


def _midnight(day: date, tz: str | tzinfo) -> datetime:
    return datetime.combine(day, time(0), zone(tz) if isinstance(tz, str) else tz)
