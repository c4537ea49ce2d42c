"""Realistic, valid events for one branch, built the way the agent builds them at the desk."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from branch_agent.outbox import Outbox
from branch_agent.recorder import build_event

SHANGHAI = ZoneInfo("Asia/Shanghai")
CHUNK = 200


def _deal_plan(rng: random.Random) -> list[tuple[str, dict]]:
    """Return the events one deal sees, in order: opened, activity, maybe a quote, an outcome."""
    amount = round(rng.uniform(5_000, 900_000), 2)
    plan: list[tuple[str, dict]] = [
        (
            "deal.opened",
            {"name": f"Deal {rng.randrange(10**6):06d}", "amount": amount, "currency": "CNY"},
        )
    ]
    for _ in range(rng.randint(1, 3)):
        plan.append(("call.logged", {"connected": rng.random() < 0.6, "outcome": "follow up"}))
    plan.append(("visit.logged", {"decision_maker_met": rng.random() < 0.5}))
    if rng.random() < 0.6:
        plan.append(("deal.stage_changed", {"to": "quote"}))
        plan.append(
            (
                "quote.issued",
                {
                    "amount": round(amount * rng.uniform(0.8, 1.0), 2),
                    "currency": "CNY",
                    "discount_pct": rng.choice([0, 5, 10]),
                },
            )
        )
    outcome = rng.random()
    if outcome < 0.3:
        plan.append(("deal.won", {"amount": amount, "currency": "CNY"}))
    elif outcome < 0.6:
        plan.append(("deal.lost", {"loss_reason": rng.choice(["price", "timing"])}))
    return plan


def _kinds(rng: random.Random) -> Iterator[tuple[str, dict, bool]]:
    """Yield ``(type, data, on_deal)`` forever: deals' lives, with loose calls between them."""
    while True:
        if rng.random() < 0.15:
            yield "call.logged", {"connected": rng.random() < 0.4}, False
            continue
        for type_, data in _deal_plan(rng):
            yield type_, data, True


def build_events(
    outbox: Outbox, count: int, reps: list[str], *, seed: int = 1, days: int = 30
) -> list[dict]:
    """Return ``count`` checked events (no seq), ``occurred_at`` rising over the past ``days``."""
    rng = random.Random(seed)
    start = datetime.now(SHANGHAI) - timedelta(days=days)
    step = timedelta(days=days) / max(count, 1)
    events: list[dict] = []
    deal = rep = None
    for i, (type_, data, on_deal) in zip(range(count), _kinds(rng), strict=False):
        if type_ == "deal.opened":
            deal, rep = str(uuid.UUID(int=rng.getrandbits(128), version=4)), rng.choice(reps)
        at = start + step * i
        events.append(
            build_event(
                outbox,
                type_,
                rep if on_deal else rng.choice(reps),
                data,
                deal=deal if on_deal else None,
                customer=f"CUST-{rng.randrange(400):03d}",
                occurred_at=at,
                event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            )
        )
    return events


def queue_events(outbox: Outbox, events: list[dict]) -> set[str]:
    """Queue ``events`` in transactions of ``CHUNK``; return their ids."""
    for first in range(0, len(events), CHUNK):
        added = outbox.add_many(events[first : first + CHUNK], source="e2e")
        assert all(new for _, new in added)
    return {e["id"] for e in events}
