"""The days and moments a request may name (the API's arguments and bodies, the console's).

Wide enough for any question about a sales organisation's history and plans, narrow enough
that every period derived from them (the previous period of a report, its weeks, a month's
or a year's end, a day's bounds in any time zone) is still a date Python and PostgreSQL hold.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from marshmallow import ValidationError, fields

FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(9000, 12, 31)
_MESSAGE = f"must be between {FIRST_DAY} and {LAST_DAY}"


def in_bounds(value: date | datetime) -> bool:
    """Whether ``value``'s day lies within ``FIRST_DAY`` .. ``LAST_DAY``."""
    return FIRST_DAY <= (value.date() if isinstance(value, datetime) else value) <= LAST_DAY


def _within(value: date | datetime) -> None:
    if not in_bounds(value):
        raise ValidationError(_MESSAGE)


def day_field(**kwargs: Any) -> fields.Date:
    """A date argument within ``FIRST_DAY`` .. ``LAST_DAY``."""
    return fields.Date(validate=_within, **kwargs)


def moment_field(kind: type[fields.DateTime] = fields.DateTime, **kwargs: Any) -> fields.DateTime:
    """A date-time argument (``kind``: DateTime or AwareDateTime) on a day within the bounds."""
    return kind(validate=_within, **kwargs)
