"""Read the period and other query values a page is asked for, with safe defaults."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import request

from hq_server.bounds import in_bounds

DEFAULT_DAYS = 30
MAX_DAYS = 3660


@dataclass(frozen=True)
class Period:
    """The days a page reports on, inclusive; ``error`` says why the asked one was refused."""

    start: date
    end: date
    error: bool = False

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def args(self) -> dict[str, str]:
        """Return the query arguments that ask for this period again."""
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}


def read_date(name: str) -> date | None:
    """Return the ISO date in query argument ``name``; None when absent, unreadable or out of
    bounds (``hq_server.bounds``)."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return None
    return day if in_bounds(day) else None


def read_moment(name: str) -> datetime | None:
    """Return the ``datetime-local`` value in query argument ``name`` (naive: HQ's zone);
    None when absent, unreadable or out of bounds."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment if in_bounds(moment) else None


def period(today: date | None = None) -> Period:
    """Return the ``from``/``to`` period asked for, else the last 30 days."""
    today = today or date.today()
    end = read_date("to") or today
    start = read_date("from") or end - timedelta(days=DEFAULT_DAYS - 1)
    bad = any(request.args.get(k) and read_date(k) is None for k in ("from", "to"))
    if start > end or (end - start).days > MAX_DAYS:
        return Period(today - timedelta(days=DEFAULT_DAYS - 1), today, True)
    return Period(start, end, bad)
