"""Record plausible live activity for the demo: calls, visits, quotes, deals moving on."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field

from branch_agent.outbox import Outbox
from branch_agent.recorder import RecordError, record

log = logging.getLogger(__name__)
CUSTOMERS = (
    "Acme",
    "Initech",
    "Globex",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Stark",
    "Wayne",
    "Cyberdyne",
    "Tyrell",
    "Wonka",
)


@dataclass
class _Deal:
    id: str
    rep: str
    customer: str
    amount: float
    stage: str = "lead"


@dataclass
class Simulator:
    """Pick the next plausible entry for a branch and record it."""

    outbox: Outbox
    rng: random.Random = field(default_factory=random.Random)
    deals: list[_Deal] = field(default_factory=list)

    def reps(self) -> list[str]:
        return [r["code"] for r in self.outbox.get_cache("reps", [])]

    def step(self) -> dict | None:
        """Record one entry; return the event (None if the branch has no reps yet)."""
        reps = self.reps()
        if not reps:
            return None
        roll = self.rng.random()
        if roll < 0.15 or not self.deals:
            return self._open(reps)
        deal = self.rng.choice(self.deals)
        if roll < 0.50:
            return self._record(
                "call.logged",
                deal,
                {
                    "connected": self.rng.random() < 0.6,
                    "reached_decision_maker": self.rng.random() < 0.3,
                    "presented": self.rng.random() < 0.2,
                },
            )
        if roll < 0.75:
            met = self.rng.random() < 0.5
            if met and deal.stage == "lead":
                deal.stage = "visit"
            return self._record("visit.logged", deal, {"decision_maker_met": met})
        if roll < 0.87 and deal.stage in ("visit", "quote"):
            deal.stage = "quote"
            price = round(deal.amount * self.rng.uniform(0.85, 1.0), 2)
            return self._record(
                "quote.issued",
                deal,
                {
                    "amount": price,
                    "currency": "CNY",
                    "discount_pct": round(self.rng.uniform(0, 20), 1),
                },
            )
        if deal.stage == "quote":
            self.deals.remove(deal)
            if self.rng.random() < 0.45:
                return self._record("deal.won", deal, {"amount": deal.amount})
            return self._record(
                "deal.lost",
                deal,
                {
                    "loss_reason": self.rng.choice(["price", "timing", "competitor", "no budget"]),
                    "competitor": self._competitor(deal),
                },
            )
        return self._record("call.logged", deal, {"connected": False})

    def _competitor(self, deal: _Deal) -> dict:
        """Name the winner; now and then forget its product and price, as people do."""
        competitor = {"name": self.rng.choice(["Rival Co", "Other Ltd"])}
        if self.rng.random() < 0.8:
            competitor.update(product="X-200", price=round(deal.amount * 0.9, 2))
        return competitor

    def _open(self, reps: list[str]) -> dict:
        deal = _Deal(
            id="",
            rep=self.rng.choice(reps),
            customer=self.rng.choice(CUSTOMERS),
            amount=float(self.rng.randrange(5, 500) * 1000),
        )
        _, event, _ = record(
            self.outbox,
            "deal.opened",
            deal.rep,
            {"name": f"{deal.customer} order", "amount": deal.amount, "currency": "CNY"},
            customer=deal.customer,
            source="simulated",
        )
        deal.id = event["deal"]
        self.deals.append(deal)
        if len(self.deals) > 200:
            self.deals.pop(0)
        return event

    def _record(self, type_: str, deal: _Deal, data: dict) -> dict:
        _, event, _ = record(
            self.outbox,
            type_,
            deal.rep,
            data,
            deal=deal.id,
            customer=deal.customer,
            source="simulated",
        )
        return event


def run(
    outbox_factory, rate: float, stop: threading.Event, seed: int | None = None, on_record=None
) -> int:
    """Record about ``rate`` entries per second until ``stop`` is set; return how many."""
    count = 0
    with outbox_factory() as outbox:
        sim = Simulator(outbox, random.Random(seed))
        while not stop.is_set():
            try:
                if sim.step() is not None:
                    count += 1
                    if on_record:
                        on_record()
            except RecordError as exc:  # e.g. reps changed under us; keep going
                log.warning("simulated entry refused: %s", exc.errors)
            stop.wait(sim.rng.expovariate(rate) if rate > 0 else 1.0)
    return count
