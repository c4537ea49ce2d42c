"""The pipeline change bridge of a close period between two moments (REFERENCE 4.10).

``start + new + pulled_in + increased − decreased − pushed_out − won − lost = end``

*start* is the open pipeline with expected close in P at t0, *end* the same at t1. Each deal
falls in exactly one case, so the identity holds exactly, in count and in amount:

- open in P at both: no count moves; a change of amount goes to *increased* or *decreased*
  (its ids list the deals, its count stays 0).
- open in P at t0 only, leaving at its t0 amount: *won* or *lost* when closed at t1;
  *pushed_out* when still open but its expected close moved out of P (later, earlier or
  cleared), whatever its amount became; *lost* when it is missing at t1 (deleted, or moved
  out of the deals being bridged): it left the pipeline without being won.
- open in P at t1 only, entering at its t1 amount: *new* when it did not exist at t0;
  *pulled_in* when it did: open with a close outside P, or closed and since reopened.
- in neither: nothing, including a deal created after t0 and already won or lost by t1. It
  was never in either snapshot's pipeline, and each deal stays in at most one count term.

Amounts convert with one rate per side (``rate_start`` at t0, ``rate_end`` at t1) and round
to the cent per deal, so a change of exchange rate shows as increased or decreased; pass the
same rate twice for a constant-currency bridge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from typing import Any

from hq_server.metrics.pipeline import ZERO, Rate, converted, within

INFLOWS = ("new", "pulled_in", "increased")
OUTFLOWS = ("decreased", "pushed_out", "won", "lost")
MOVES = ("new", "pulled_in", "pushed_out", "won", "lost")  # the terms that move deals
TERMS = ("start", *INFLOWS, *OUTFLOWS, "end")


@dataclass(frozen=True)
class Term:
    """One term of the bridge: deals moved, amount, and the ids behind it."""

    count: int = 0
    amount: Decimal = ZERO
    ids: tuple = ()

    def as_dict(self) -> dict:
        """Return the term with money as a string and ids as strings."""
        return {"count": self.count, "amount": str(self.amount), "ids": [str(i) for i in self.ids]}


@dataclass(frozen=True)
class Bridge:
    """How the open pipeline closing in [p_from, p_to] went from start to end."""

    p_from: date
    p_to: date
    start: Term
    new: Term
    pulled_in: Term
    increased: Term
    decreased: Term
    pushed_out: Term
    won: Term
    lost: Term
    end: Term

    def _balances(self, attr: str) -> bool:
        value = getattr(self.start, attr)
        value += sum(getattr(getattr(self, name), attr) for name in INFLOWS)
        value -= sum(getattr(getattr(self, name), attr) for name in OUTFLOWS)
        return value == getattr(self.end, attr)

    def check(self) -> bool:
        """Tell whether the identity holds in count and in amount."""
        return self._balances("count") and self._balances("amount")

    def as_dict(self) -> dict:
        """Return the bridge as JSON-ready values, with whether it balances."""
        terms = {f.name: getattr(self, f.name).as_dict() for f in fields(self) if f.name in TERMS}
        period = {"from": self.p_from.isoformat(), "to": self.p_to.isoformat()}
        return {"period": period, "terms": terms, "balanced": self.check()}


def _open_in(deal: dict | None, p_from: date, p_to: date) -> bool:
    return (
        deal is not None
        and deal["status"] == "open"
        and within(deal.get("expected_close"), p_from, p_to)
    )


def _exit(after: dict | None) -> str:
    """Name the term a deal leaves P's open pipeline by."""
    if after is None or after["status"] == "lost":
        return "lost"
    return "won" if after["status"] == "won" else "pushed_out"


def _flows(
    before: dict | None, after: dict | None, p: tuple[date, date], rates: tuple[Rate, Rate]
) -> list[tuple[str, Decimal]]:
    """Return the terms one deal lands in, with its amount in each."""
    was, now = _open_in(before, *p), _open_in(after, *p)
    a0 = converted(before, rates[0]) if was else ZERO
    a1 = converted(after, rates[1]) if now else ZERO
    if was and now:
        flows = [("start", a0), ("end", a1)]
        if a1 > a0:
            flows.append(("increased", a1 - a0))
        elif a1 < a0:
            flows.append(("decreased", a0 - a1))
        return flows
    if was:
        return [("start", a0), (_exit(after), a0)]
    if now:
        return [("new" if before is None else "pulled_in", a1), ("end", a1)]
    return []


def bridge(
    start_deals: Mapping[Any, dict],
    end_deals: Mapping[Any, dict],
    p_from: date,
    p_to: date,
    *,
    rate_start: Rate,
    rate_end: Rate | None = None,
) -> Bridge:
    """Bridge the open pipeline closing in [p_from, p_to] from t0 to t1.

    ``start_deals`` and ``end_deals`` map deal id to the deal as it was at t0 and at t1.
    """
    rates = (rate_start, rate_end or rate_start)
    rows: dict[str, list[tuple[Any, Decimal]]] = {name: [] for name in TERMS}
    for deal_id in start_deals.keys() | end_deals.keys():
        before, after = start_deals.get(deal_id), end_deals.get(deal_id)
        for name, amount in _flows(before, after, (p_from, p_to), rates):
            rows[name].append((deal_id, amount))
    terms = {name: _term(name, found) for name, found in rows.items()}
    return Bridge(p_from, p_to, **terms)


def _term(name: str, found: list[tuple[Any, Decimal]]) -> Term:
    """Total one term; increased and decreased move amount but no deals."""
    return Term(
        count=0 if name in ("increased", "decreased") else len(found),
        amount=sum((amount for _, amount in found), ZERO),
        ids=tuple(sorted((deal_id for deal_id, _ in found), key=str)),
    )
