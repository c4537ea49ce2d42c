"""Exchange rates into the reporting currency, by date; the rate of an as-of date is shown."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from flask import current_app
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert

from hq_server.extensions import db
from hq_server.models import FxRate


class FxError(ValueError):
    """A rate is missing or not valid."""


def reporting_currency() -> str:
    return current_app.config["SETTINGS"].reporting_currency


# What the rate column holds: 20 digits, 8 of them after the point.
SMALLEST_RATE = Decimal("0.00000001")
RATE_LIMIT = Decimal(10) ** 12
MAX_SOURCE = 100


def set_rate(currency: str, day: date, rate: Decimal, source: str = "") -> dict:
    """Record (or correct) one day's rate of ``currency`` (caller commits)."""
    currency = currency.upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise FxError("currency must be an ISO 4217 code, e.g. USD")
    if not rate.is_finite() or not SMALLEST_RATE <= rate < RATE_LIMIT:
        raise FxError(f"rate must be a number from {SMALLEST_RATE} to below {RATE_LIMIT:,}")
    if len(source) > MAX_SOURCE or "\x00" in source:
        raise FxError(f"source must be at most {MAX_SOURCE} characters, without NUL")
    if currency == reporting_currency():
        raise FxError(f"{currency} is the reporting currency (its rate is 1)")
    db.session.execute(
        insert(FxRate)
        .values(currency=currency, day=day, rate=rate, source=source)
        .on_conflict_do_update(
            index_elements=["currency", "day"], set_={"rate": rate, "source": source}
        )
    )
    return {"currency": currency, "day": day.isoformat(), "rate": str(rate), "source": source}


def rates_as_of(day: date) -> dict[str, dict]:
    """Return, per currency, the latest rate dated on or before ``day`` and its date."""
    rows = db.session.execute(
        text(
            "SELECT DISTINCT ON (currency) currency, day, rate FROM fx_rates WHERE day <= :d "
            "ORDER BY currency, day DESC"
        ),
        {"d": day},
    ).all()
    out = {currency: {"rate": rate, "day": rate_day} for currency, rate_day, rate in rows}
    out[reporting_currency()] = {"rate": Decimal(1), "day": None}
    return out


def converter(day: date):
    """Return ``rate(currency)`` as of ``day``; an unknown currency raises ``FxError``."""
    table = rates_as_of(day)

    def rate(currency: str) -> Decimal:
        try:
            return table[currency]["rate"]
        except KeyError:
            raise FxError(f"no exchange rate for {currency} on or before {day}") from None

    return rate, table
