"""Weighted pipeline, forecast categories with their roll-ups, and coverage.

The rules every screen shares (REFERENCE 4.1, 4.2, 4.8):

- A deal's amount converts to the reporting currency and rounds to the cent (half up), one
  deal at a time; totals are sums of those values, so a drill-down always adds up.
- Weighted = ``round(amount × fx × stage probability, 2)`` per deal, then summed; open deals
  only. Won deals count in *closed*, never in weighted pipeline; lost deals count 0.
- Category = the rep's override, else the stage's default; won → closed, lost → omitted. An
  open deal cannot be *closed*: that override (or any unknown one) falls back to the stage's.
- Open amount, weighted, by stage and by month take every open deal; the forecast roll-ups
  leave out *omitted* ones, as Salesforce does.
- A window ``[close_from, close_to]`` (either end optional) keeps open deals whose expected
  close falls in it and closed deals whose close day does (``closed_day`` when the row has
  it, else the date of ``closed_at``). A deal without that date is outside any window; with
  no window, open deals without an expected close go to the ``"none"`` month.
- ``as_dict()`` writes money as strings with two decimals (``"1234.50"``): exact, no floats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from shared.stages import FORECAST_CATEGORIES, Stage

Rate = Callable[[str], Decimal]

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
NO_MONTH = "none"
OPEN_CATEGORIES = ("pipeline", "best_case", "commit", "omitted")
# We have no most-likely category; it stays in the roll-ups so they read as Salesforce's.
MOST_LIKELY = ZERO


def cents(value: Decimal) -> Decimal:
    """Round ``value`` to the cent, half up."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def in_currency(rate: Rate, currency: str) -> Rate:
    """Return ``rate`` with the reporting currency itself converting at 1.

    A deal whose currency is not known yet (an update arrived before its opening) counts
    in the reporting currency until it is.
    """
    return lambda code: Decimal(1) if code in (currency, None) else rate(code)


def _fx(currency: str | None, rate: Rate) -> Decimal:
    try:
        return rate(currency)
    except KeyError:
        raise KeyError(f"no exchange rate for currency {currency!r}") from None


def _exact(deal: dict, rate: Rate) -> Decimal:
    """Return the deal's amount in the reporting currency, unrounded (no amount: 0)."""
    amount = deal.get("amount")
    if amount is None:
        return ZERO
    if isinstance(amount, float):
        raise TypeError(f"deal {deal.get('id')!r}: money must be a Decimal, not a float")
    return Decimal(amount) * _fx(deal.get("currency"), rate)


def converted(deal: dict, rate: Rate) -> Decimal:
    """Return the deal's amount in the reporting currency, rounded to the cent."""
    return cents(_exact(deal, rate))


def stage_of(deal: dict, stages: Iterable[Stage]) -> Stage:
    """Return the deal's row of the stage table (no stage yet: the first open one)."""
    name = deal.get("stage")
    if name is None:
        return min((s for s in stages if not s.is_closed), key=lambda s: s.order)
    for stage in stages:
        if stage.name == name:
            return stage
    raise KeyError(f"stage {name!r} is not in the stage table")


def weighted(deal: dict, stages: Iterable[Stage], rate: Rate) -> Decimal:
    """Return ``round(amount × fx × probability, 2)`` for an open deal, 0 for a closed one."""
    if deal["status"] != "open":
        return ZERO
    # str() keeps the table's 0.1 as Decimal("0.1"), not its binary expansion.
    probability = Decimal(str(stage_of(deal, stages).probability))
    return cents(_exact(deal, rate) * probability)


def forecast_category(deal: dict, stages: Iterable[Stage]) -> str:
    """Return the deal's forecast category: won closed, lost omitted, else override or stage."""
    if deal["status"] == "won":
        return "closed"
    if deal["status"] == "lost":
        return "omitted"
    override = deal.get("forecast_category")
    if override in OPEN_CATEGORIES:
        return override
    return stage_of(deal, stages).forecast_category


def coverage(open_in_period: Decimal, target: Decimal, closed: Decimal) -> Decimal | None:
    """Return ``open / (target − closed)``, or None when nothing is left to cover."""
    left = target - closed
    return open_in_period / left if left > 0 else None


def within(day: date | None, lo: date | None, hi: date | None) -> bool:
    """Tell whether ``day`` lies in ``[lo, hi]``; no bounds take every day, even none."""
    if lo is None and hi is None:
        return True
    if day is None:
        return False
    return (lo is None or lo <= day) and (hi is None or day <= hi)


def close_day(deal: dict) -> date | None:
    """Return the day a closed deal closed: its local ``closed_day``, else ``closed_at``'s."""
    day = deal.get("closed_day") or deal.get("closed_at")
    return day.date() if isinstance(day, datetime) else day


def month_of(deal: dict) -> str:
    """Return the ``YYYY-MM`` of the deal's expected close, or ``"none"``."""
    day = deal.get("expected_close")
    return NO_MONTH if day is None else _month(day)


@lru_cache(maxsize=4096)
def _month(day: date) -> str:
    return f"{day:%Y-%m}"


@dataclass(frozen=True)
class Line:
    """Deals counted together: how many, their amount and their weighted amount."""

    count: int = 0
    amount: Decimal = ZERO
    weighted: Decimal = ZERO

    def as_dict(self) -> dict:
        """Return the line with money as strings."""
        return {"count": self.count, "amount": str(self.amount), "weighted": str(self.weighted)}


@dataclass(frozen=True)
class PipelineSummary:
    """The pipeline of a set of deals, in one currency, for an optional close window."""

    currency: str | None
    close_from: date | None
    close_to: date | None
    by_stage: dict[str, Line] = field(default_factory=dict)
    by_category: dict[str, Line] = field(default_factory=dict)
    by_month: dict[str, Line] = field(default_factory=dict)

    @property
    def open_count(self) -> int:
        return sum(line.count for line in self.by_stage.values())

    @property
    def open_amount(self) -> Decimal:
        return sum((line.amount for line in self.by_stage.values()), ZERO)

    @property
    def weighted_amount(self) -> Decimal:
        return sum((line.weighted for line in self.by_stage.values()), ZERO)

    @property
    def won_count(self) -> int:
        return self.category("closed").count

    @property
    def won_amount(self) -> Decimal:
        return self.category("closed").amount

    def category(self, name: str) -> Line:
        """Return the line of one forecast category (empty when no deal is in it)."""
        return self.by_category.get(name, Line())

    @property
    def open_pipeline(self) -> Decimal:
        c = self.category
        return c("pipeline").amount + c("best_case").amount + MOST_LIKELY + c("commit").amount

    @property
    def best_case_forecast(self) -> Decimal:
        c = self.category
        return c("best_case").amount + MOST_LIKELY + c("commit").amount + c("closed").amount

    @property
    def commit_forecast(self) -> Decimal:
        return self.category("commit").amount + self.category("closed").amount

    def as_dict(self) -> dict:
        """Return the summary as JSON-ready values (money as strings, dates ISO)."""
        return {
            "currency": self.currency,
            "close_from": self.close_from and self.close_from.isoformat(),
            "close_to": self.close_to and self.close_to.isoformat(),
            "open": Line(self.open_count, self.open_amount, self.weighted_amount).as_dict(),
            "won": {"count": self.won_count, "amount": str(self.won_amount)},
            "rollups": {
                "open_pipeline": str(self.open_pipeline),
                "best_case_forecast": str(self.best_case_forecast),
                "commit_forecast": str(self.commit_forecast),
            },
            "by_stage": {k: v.as_dict() for k, v in self.by_stage.items()},
            "by_category": {k: v.as_dict() for k, v in self.by_category.items()},
            "by_month": {k: v.as_dict() for k, v in self.by_month.items()},
        }


def _in_window(deal: dict, lo: date | None, hi: date | None) -> bool:
    day = deal.get("expected_close") if deal["status"] == "open" else close_day(deal)
    return within(day, lo, hi)


def summarize(
    deals: Iterable[dict],
    stages: Iterable[Stage],
    rate: Rate,
    *,
    currency: str | None = None,
    close_from: date | None = None,
    close_to: date | None = None,
) -> PipelineSummary:
    """Summarize deals: open and weighted by stage and month, categories, closed won.

    ``rate(code)`` converts to the reporting ``currency``; deals already in it need no rate.
    A row may stand for several deals summed up already (the history's snapshots): its
    ``_count`` says how many, and ``_weighted``, when set, is their weighted amount in the
    reporting currency, rounded per deal before the sum.
    """
    stages = tuple(stages)
    if currency is not None:
        rate = in_currency(rate, currency)
    open_stages = sorted((s for s in stages if not s.is_closed), key=lambda s: s.order)
    # [count, amount, weighted] per key, added up in place (a Line per deal costs more).
    by_stage = {s.name: [0, ZERO, ZERO] for s in open_stages}
    by_category = {name: [0, ZERO, ZERO] for name in FORECAST_CATEGORIES}
    by_month: dict[str, list] = {}
    windowed = close_from is not None or close_to is not None
    for deal in deals:
        if windowed and not _in_window(deal, close_from, close_to):
            continue
        amount, n = converted(deal, rate), deal.get("_count", 1)
        weight = deal["_weighted"] if "_weighted" in deal else weighted(deal, stages, rate)
        _add(by_category, forecast_category(deal, stages), amount, weight, n)
        if deal["status"] == "open":
            _add(by_stage, stage_of(deal, stages).name, amount, weight, n)
            _add(by_month, month_of(deal), amount, weight, n)
    months = sorted(by_month, key=lambda m: (m == NO_MONTH, m))
    return PipelineSummary(
        currency,
        close_from,
        close_to,
        {k: Line(*v) for k, v in by_stage.items()},
        {k: Line(*v) for k, v in by_category.items()},
        {m: Line(*by_month[m]) for m in months},
    )


def _add(lines: dict[str, list], key: str, amount: Decimal, weight: Decimal, n: int) -> None:
    line = lines.get(key)
    if line is None:
        line = lines[key] = [0, ZERO, ZERO]
    line[0] += n
    line[1] += amount
    line[2] += weight
