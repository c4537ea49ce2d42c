"""The days and moments the API accepts in a request.

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


def _within(value: date | datetime) -> None:
    day = value.date() if isinstance(value, datetime) else value
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValidationError(_MESSAGE)


def day_field(**kwargs: Any) -> fields.Date:
    """A date argument within ``FIRST_DAY`` .. ``LAST_DAY``."""
    return fields.Date(validate=_within, **kwargs)


def moment_field(kind: type[fields.DateTime] = fields.DateTime, **kwargs: Any) -> fields.DateTime:
    """A date-time argument (``kind``: DateTime or AwareDateTime) on a day within the bounds."""
    return kind(validate=_within, **kwargs)
