"""Valid events of every type, for tests to send as they are or to spoil."""

from __future__ import annotations

import copy
import uuid

VALID_DATA = {
    "lead.created": {"source": "web", "campaign": "spring", "score": 70, "lifecycle": "potential"},
    "lead.assigned": {"to_rep": "SH01-002"},
    "lead.recycled": {"reason": "no budget"},
    "call.logged": {"connected": True, "reached_decision_maker": True, "presented": False},
    "visit.logged": {"decision_maker_met": True, "outcome": "demo booked", "next_step": "quote"},
    "quote.issued": {
        "amount": "1200.50",
        "currency": "CNY",
        "discount_pct": 10,
        "products": ["GTX Pro"],
        "competitor": {"name": "Rival", "product": "X1", "price": 1100},
    },
    "deal.opened": {
        "name": "ACME rollout",
        "amount": 50000,
        "currency": "CNY",
        "expected_close": "2027-01-31",
        "stage": "lead",
    },
    "deal.stage_changed": {"from": "lead", "to": "visit"},
    "deal.updated": {"forecast_category": "commit"},
    "deal.won": {"amount": 48000},
    "deal.lost": {"loss_reason": "price", "competitor": {"name": "Rival"}},
    "payment.failed": {"amount": 300, "currency": "CNY", "reason": "card declined"},
}


def sample_event(type_: str, **changes) -> dict:
    """A valid event of ``type_`` with ``changes`` made (its data is shared: copy to change it)."""
    event = {
        "id": str(uuid.uuid4()),
        "seq": 1,
        "type": type_,
        "occurred_at": "2026-11-22T10:15:00+08:00",
        "rep": "SH01-007",
        "deal": str(uuid.uuid4()),
        "data": VALID_DATA[type_],
    }
    event.update(changes)
    return event


# Every field of the envelope, in the order the contract lists them.
ENVELOPE_KEYS = [
    "id",
    "seq",
    "type",
    "occurred_at",
    "rep",
    "deal",
    "customer",
    "data",
    "playbook_version",
]


def full_event(type_: str) -> dict:
    """A valid event with every envelope field filled; its data a copy, free to change."""
    data = copy.deepcopy(VALID_DATA[type_])
    return sample_event(type_, seq=7, customer="ACME", playbook_version=3, data=data)
