"""What the selects offer: the branch's reps, known deals and stages."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from branch_agent.outbox import Outbox
from branch_agent.web.i18n import STAGE_LABELS
from shared.stages import DEFAULT_STAGES

# Known deals come from the outbox; older rows than this are not looked at.
SCAN_LIMIT = 5000


@dataclass
class Lookups:
    """Reps, deals and stages as the last pull and the outbox know them."""

    reps: dict[str, str] = field(default_factory=dict)  # code -> name
    deals: dict[str, dict] = field(default_factory=dict)  # id -> {name, customer}
    closed: set[str] = field(default_factory=set)
    stages: list[str] = field(default_factory=list)  # open stages, in funnel order

    @classmethod
    def load(cls, outbox: Outbox) -> Lookups:
        """Read the cache and the outbox."""
        reps = {r["code"]: r.get("name") or r["code"] for r in outbox.get_cache("reps", [])}
        stages = outbox.get_cache("stages") or [asdict(s) for s in DEFAULT_STAGES]
        open_stages = sorted(
            (s for s in stages if not s.get("is_won") and not s.get("is_lost")),
            key=lambda s: s.get("order", 0),
        )
        found = cls(reps=reps, stages=[s["name"] for s in open_stages])
        found._read_deals(outbox)
        return found

    def _read_deals(self, outbox: Outbox) -> None:
        for row in outbox.list(limit=SCAN_LIMIT):  # newest first: a correction wins
            body, deal = row["body"] or {}, row["deal"]
            if row["state"] == "discarded" or not deal:
                continue
            if row["type"] == "deal.opened":
                self.deals.setdefault(
                    deal,
                    {"name": body.get("data", {}).get("name"), "customer": body.get("customer")},
                )
            elif row["type"] in ("deal.won", "deal.lost"):
                self.closed.add(deal)
        for lead in outbox.get_cache("leads", []):
            if lead.get("deal"):
                self.deals.setdefault(
                    lead["deal"], {"name": lead.get("name"), "customer": lead.get("customer")}
                )

    def rep_label(self, code: str | None) -> str:
        """Return "name (code)" for a rep code."""
        if not code:
            return ""
        name = self.reps.get(code)
        return f"{name} ({code})" if name and name != code else code

    def deal_label(self, deal: str | None) -> str:
        """Return "name — customer" for a deal id."""
        known = self.deals.get(deal or "")
        if not known:
            return deal or ""
        name = known.get("name") or (deal or "")[:8]
        return f"{name} — {known['customer']}" if known.get("customer") else name

    def customer_of(self, deal: str | None) -> str | None:
        """Return the customer of a known deal."""
        return (self.deals.get(deal or "") or {}).get("customer")

    def options(self, name: str, current: str = "") -> list[tuple[str, str]]:
        """Return (value, label) pairs for a select, keeping ``current`` among them."""
        if name == "reps":
            pairs = [(code, self.rep_label(code)) for code in self.reps]
        elif name == "deals":
            pairs = sorted(
                ((d, self.deal_label(d)) for d in self.deals if d not in self.closed),
                key=lambda pair: pair[1].casefold(),
            )
        else:
            pairs = [(s, str(STAGE_LABELS.get(s, s))) for s in self.stages]
        if current and current not in {value for value, _ in pairs}:
            label = self.deal_label(current) if name == "deals" else current
            pairs.append((current, label))
        return pairs
