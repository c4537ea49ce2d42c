"""Working time: a unit's working days and hours, and arithmetic over them.

Each local day contributes at most one working window, ``[open, close)`` on
its wall clock, turned into UTC instants through the calendar's time zone; all
arithmetic is on those instants, a day at a time (never a minute at a time), so
DST days are as long as they really are and weekends and holidays are skipped
whole. ``extra_workdays`` are weekend days worked in exchange for a holiday
(China's make-up working days).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from shared.playbook.model import Playbook

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_TIMEZONE = "Asia/Shanghai"
MAX_DAYS = 366 * 30  # a deadline further than this is a mistake, not a plan
_ZERO = timedelta(0)
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Calendar:
    """Working days and hours in a time zone, with holidays and make-up working days.

    ``workdays`` takes day names (``"mon"``) or numbers (Monday is 0), ``hours``
    a ``(start, end)`` pair of ``time`` or ``"HH:MM"``, the date sets ``date``
    or ISO text; they are stored normalized.
    """

    timezone: str = DEFAULT_TIMEZONE
    workdays: frozenset[int] = frozenset(range(5))
    hours: tuple[time, time] = (time(9), time(18))
    holidays: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()
    tz: tzinfo = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "tz", zone(self.timezone))
        set_(self, "workdays", frozenset(_weekday(d) for d in self.workdays))
        start, end = (_time(t) for t in self.hours)
        if not start < end:
            raise ValueError("working hours must start before they end")
        set_(self, "hours", (start, end))
        set_(self, "holidays", frozenset(_date(d) for d in self.holidays))
        set_(self, "extra_workdays", frozenset(_date(d) for d in self.extra_workdays))
        if not self.workdays and not self.extra_workdays:
            raise ValueError("a calendar needs at least one working day")
        if self.holidays & self.extra_workdays:
            raise ValueError("a day cannot be both a holiday and an extra working day")

    def is_workday(self, day: date) -> bool:
        """Tell whether ``day`` (a local date) has working hours."""
        if day in self.extra_workdays:
            return True
        return day.weekday() in self.workdays and day not in self.holidays

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """Return the working window of a local date as UTC instants, if it has one."""
        if not self.is_workday(day):
            return None
        opens = datetime.combine(day, self.hours[0], self.tz).astimezone(UTC)
        closes = datetime.combine(day, self.hours[1], self.tz).astimezone(UTC)
        return (opens, closes) if opens < closes else None

    def windows(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Yield the working windows from the local day of ``start`` on, clipped to ``start``."""
        at = _utc(start)
        day = at.astimezone(self.tz).date()
        for _ in range(MAX_DAYS):
            window = self.window(day)
            if window is not None and window[1] > at:
                yield max(window[0], at), window[1]
            day += _DAY
        raise ValueError(f"no end of working time within {MAX_DAYS} days")

    def to_dict(self) -> dict[str, Any]:
        """Return the calendar as the playbook writes it."""
        return {
            "timezone": self.timezone,
            "workdays": [WEEKDAYS[d] for d in sorted(self.workdays)],
            "hours": [t.strftime("%H:%M") for t in self.hours],
            "holidays": sorted(d.isoformat() for d in self.holidays),
            "extra_workdays": sorted(d.isoformat() for d in self.extra_workdays),
        }


def add_working_time(start: datetime, duration: timedelta, cal: Calendar) -> datetime:
    """Return the moment ``duration`` of working time after ``start`` (in the calendar's zone)."""
    if duration < _ZERO:
        raise ValueError("duration must not be negative")
    if duration == _ZERO:
        return _utc(start).astimezone(cal.tz)
    remaining = duration
    for opens, closes in cal.windows(start):
        available = closes - opens
        if remaining <= available:
            return (opens + remaining).astimezone(cal.tz)
        remaining -= available
    raise AssertionError("unreachable: windows() raises when it runs out")  # pragma: no cover


def working_seconds(start: datetime, end: datetime, cal: Calendar) -> float:
    """Return the working seconds between two moments (0 if ``end`` is not after ``start``)."""
    start, end = _utc(start), _utc(end)
    if end <= start:
        return 0.0
    total = _ZERO
    day, last = start.astimezone(cal.tz).date(), end.astimezone(cal.tz).date()
    while day <= last:
        window = cal.window(day)
        if window is not None:
            low, high = max(window[0], start), min(window[1], end)
            if low < high:
                total += high - low
        day += _DAY
    return total.total_seconds()


def calendar_for(playbook: Playbook, unit_codes: Iterable[str]) -> Calendar:
    """Return the calendar of the first unit (leaf to root) that has one, else the default."""
    for code in unit_codes:
        found = playbook.calendars.get(code)
        if found is not None:
            return found
    return playbook.calendars["default"]


def zone(name: str) -> tzinfo:
    """Return the time zone called ``name``; raise ``ValueError`` if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("times must carry a UTC offset")
    return moment.astimezone(UTC)


def _weekday(value: int | str) -> int:
    if isinstance(value, str) and value.lower() in WEEKDAYS:
        return WEEKDAYS.index(value.lower())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    raise ValueError(f"{value!r} is not a day of the week (mon … sun)")


def _time(value: time | str) -> time:
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a time of day like 09:00") from None


def _date(value: date | str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a date like 2026-10-01") from None
