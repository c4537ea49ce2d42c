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


def increments(event: dict) -> dict[str, Decimal]:
    """Return the metric increments one loaded event contributes."""
    kind, data = event["type"], event["data"]
    out: dict[str, Decimal] = {"events": Decimal(1)}
    if kind in _COUNTED:
        out[_COUNTED[kind]] = Decimal(1)
    for (flag_kind, flag), metric in _FLAGGED.items():
        if kind == flag_kind and data.get(flag):
            out[metric] = Decimal(1)
    if kind in _AMOUNTS and data.get("amount") is not None:
        out[_AMOUNTS[kind]] = Decimal(data["amount"])
    return out


def add_into(totals: dict, key: tuple, event: dict) -> None:
    """Accumulate ``event``'s increments into ``totals[(*key, metric)]``."""
    for metric, value in increments(event).items():
        full = (*key, metric)
        totals[full] = totals.get(full, Decimal(0)) + value
