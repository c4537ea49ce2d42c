"""What one event adds to the daily rollups: additive metric increments."""

from __future__ import annotations

from decimal import Decimal

# Event type -> metric counted once per event.
_COUNTED = {
    "lead.created": "leads_created",
    "lead.assigned": "leads_assigned",
    "lead.recycled": "leads_recycled",
    "call.logged": "calls",
    "visit.logged": "visits",
    "quote.issued": "quotes",
    "deal.opened": "deals_opened",
    "deal.stage_changed": "stage_changes",
    "deal.won": "deals_won",
    "deal.lost": "deals_lost",
    "payment.failed": "payments_failed",
}

# (event type, data flag) -> metric counted when the flag is true.
_FLAGGED = {
    ("call.logged", "connected"): "calls_connected",
    ("call.logged", "reached_decision_maker"): "calls_decision_maker",
    ("call.logged", "presented"): "calls_presented",
    ("visit.logged", "decision_maker_met"): "visits_decision_maker",
}

# Event type -> metric summing ``data.amount`` (in the event's own currency).
_AMOUNTS = {
    "quote.issued": "quote_amount",
    "deal.opened": "opened_amount",
    "deal.won": "won_amount",
    "payment.failed": "failed_payment_amount",
}

METRICS = tuple(sorted({"events", *_COUNTED.values(), *_FLAGGED.values(), *_AMOUNTS.values()}))


_ONE = Decimal(1)
# Per event type, what ``increments`` adds: counted metrics, (flag, metric) pairs, amount metric.
_PLAN = {
    kind: (
        ("events", _COUNTED[kind]) if kind in _COUNTED else ("events",),
        tuple((flag, metric) for (k, flag), metric in _FLAGGED.items() if k == kind),
        _AMOUNTS.get(kind),
    )
    for kind in {*_COUNTED, *(k for k, _ in _FLAGGED), *_AMOUNTS}
}
_EVENTS_ONLY = (("events",), (), None)


def increments(event: dict) -> dict[str, Decimal]:
    """Return the metric increments one loaded event contributes."""
    counted, flagged, amount = _PLAN.get(event["type"], _EVENTS_ONLY)
    data = event["data"]
    out = dict.fromkeys(counted, _ONE)
    for flag, metric in flagged:
        if data.get(flag):
            out[metric] = _ONE
    if amount is not None and data.get("amount") is not None:
        out[amount] = Decimal(data["amount"])
    return out


def add_into(totals: dict, key: tuple, event: dict) -> None:
    """Accumulate ``event``'s increments into ``totals[(*key, metric)]``."""
    for metric, value in increments(event).items():
        full = (*key, metric)
        totals[full] = totals[full] + value if full in totals else value
