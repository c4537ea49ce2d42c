"""Playbook benchmark: compiled conditions against hand-written lambdas, and ``check_event``.

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/playbook.py
    .venv/bin/python bench/playbook.py --evals 100000 --events 5000   # quick run

It measures, in one process on one core:

1. condition evaluations per second for four typical conditions (a simple
   comparison, an ``or`` of two, ``in`` a list, a definition reference), each
   next to the same test written by hand as a Python lambda, with the ratio;
2. ``check_event`` events per second on a mixed stream of events, with the
   default playbook (``config/playbook.default.yaml``) and with a playbook that
   has no rules.

Each figure is the best of ``--repeats`` runs. The last line is::

    RESULT evals_per_s=<int> baseline_evals_per_s=<int> ratio=<2 decimals>

for the simple comparison.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.playbook import Playbook, check_event, compile_expression, load_playbook  # noqa: E402

DEFAULT_PLAYBOOK = ROOT / "config" / "playbook.default.yaml"
CST = timezone(timedelta(hours=8))
EMPTY_PLAYBOOK = """\
version: 1
name: No rules
stages:
  - {name: lead, order: 1, probability: 0.1, forecast_category: pipeline}
  - {name: won, order: 2, probability: 1.0, forecast_category: closed, won: true}
  - {name: lost, order: 0, probability: 0.0, forecast_category: omitted, lost: true}
"""


# The baselines: the same tests written by hand, None-safe like the compiled ones but
# trusting ``data`` to be a dict (the compiled ones do not).
CURRENCIES = frozenset(["CNY", "USD", "EUR"])
SIMPLE = lambda e: (v := e["data"].get("discount_pct")) is not None and v > 15  # noqa: E731
EITHER = lambda e: (  # noqa: E731
    ((d := e["data"].get("discount_pct")) is not None and d > 15)
    or ((a := e["data"].get("amount")) is not None and a >= 1000000)
)
LISTED = lambda e: e["data"].get("currency") in CURRENCIES  # noqa: E731
READY_BY_HAND = lambda e: (v := e["data"].get("score")) is not None and v >= 60  # noqa: E731

READY = compile_expression("data.score >= 60")
CASES: list[tuple[str, str, Callable[[dict], bool], dict]] = [
    ("simple comparison", "data.discount_pct > 15", SIMPLE, {}),
    ("or of two", "data.discount_pct > 15 or data.amount >= 1000000", EITHER, {}),
    ("in a list", "data.currency in ['CNY', 'USD', 'EUR']", LISTED, {}),
    ("definition", "sales_ready", READY_BY_HAND, {"sales_ready": READY}),
]


def condition_events(n: int, rng: random.Random) -> list[dict]:
    """Return ``n`` quote-like events, about half of which pass each condition."""
    return [
        {
            "type": "quote.issued",
            "data": {
                "amount": Decimal(rng.choice(["5000.00", "250000.00", "1200000.00"])),
                "currency": rng.choice(["CNY", "USD", "JPY"]),
                "discount_pct": Decimal(rng.choice(["5.00", "12.50", "20.00"])),
                "score": rng.randint(0, 100),
            },
        }
        for _ in range(n)
    ]


def rate(fn: Callable[[dict], object], events: list[dict], total: int, repeats: int) -> float:
    """Return the best evaluations per second of ``fn`` over ``total`` evaluations."""
    rounds = max(1, total // len(events))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(rounds):
            for event in events:
                fn(event)
        best = min(best, time.perf_counter() - started)
    return rounds * len(events) / best


def event_stream(n: int, rng: random.Random) -> list[dict]:
    """Return a mixed day of branch events over a few hundred deals, in time order."""
    start = datetime(2026, 11, 23, 9, tzinfo=CST)
    deals = [str(uuid.uuid4()) for _ in range(max(1, n // 20))]
    kinds: list[tuple[str, Callable[[], dict], int]] = [
        ("visit.logged", lambda: {"decision_maker_met": rng.random() < 0.5}, 25),
        ("call.logged", lambda: {"connected": rng.random() < 0.6}, 30),
        ("quote.issued", lambda: _quote(rng), 12),
        ("deal.opened", lambda: _opened(rng), 6),
        ("deal.updated", lambda: {"amount": Decimal(rng.randint(1, 2_000_000))}, 6),
        ("deal.lost", lambda: _lost(rng), 3),
        ("lead.created", lambda: {"source": "web", "score": rng.randint(0, 100)}, 8),
        ("lead.assigned", lambda: {"to_rep": "SH01-002"}, 6),
        ("payment.failed", lambda: {"amount": Decimal(300), "currency": "CNY"}, 4),
    ]
    names, makers, weights = zip(*[(k, m, w) for k, m, w in kinds], strict=True)
    events = []
    for i in range(n):
        k = rng.choices(range(len(names)), weights)[0]
        events.append(
            {
                "id": str(uuid.uuid4()),
                "type": names[k],
                "occurred_at": start + timedelta(seconds=30 * i),
                "rep": "SH01-007",
                "deal": rng.choice(deals),
                "data": makers[k](),
            }
        )
    return events


def _quote(rng: random.Random) -> dict:
    return {
        "amount": Decimal(rng.randint(1000, 1_500_000)),
        "currency": "CNY",
        "discount_pct": Decimal(rng.randint(0, 25)),
    }


def _opened(rng: random.Random) -> dict:
    return {"name": "Deal", "amount": Decimal(rng.randint(1000, 1_500_000)), "currency": "CNY"}


def _lost(rng: random.Random) -> dict:
    if rng.random() < 0.5:
        return {"loss_reason": "price"}
    return {"loss_reason": "price", "competitor": {"name": "R", "product": "X", "price": 9}}


def history_of(events: Iterable[dict]) -> Callable[[str, tuple[str, ...]], list[dict]]:
    """Return a ``priors`` callable over an in-memory event log, like HQ's per-deal query."""
    by_deal: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        by_deal[event["deal"]].append(event)

    def priors(deal_id: str, types: tuple[str, ...]) -> list[dict]:
        return [e for e in by_deal.get(deal_id, ()) if e["type"] in types]

    return priors


def check_rate(playbook: Playbook, events: list[dict], priors, repeats: int) -> float:
    """Return the best events per second of ``check_event`` over the stream."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for event in events:
            check_event(playbook, event, priors)
        best = min(best, time.perf_counter() - started)
    return len(events) / best


@click.command()
@click.option("--evals", default=1_000_000, show_default=True, help="evaluations per figure")
@click.option("--events", default=20_000, show_default=True, help="events in the stream")
@click.option("--repeats", default=5, show_default=True, help="runs per figure (best kept)")
@click.option("--seed", default=7, show_default=True)
def main(evals: int, events: int, repeats: int, seed: int) -> None:
    """Print condition and check_event throughput next to their baselines."""
    rng = random.Random(seed)
    sample = condition_events(1000, rng)
    print(f"{'condition':<20} {'compiled/s':>12} {'lambda/s':>12} {'ratio':>6}")
    figures = {}
    for label, source, baseline, definitions in CASES:
        compiled = compile_expression(source, definitions=definitions)
        mismatches = sum(bool(compiled(e)) != bool(baseline(e)) for e in sample)
        if mismatches:
            raise SystemExit(f"{label}: compiled and hand-written disagree on {mismatches} events")
        ours = rate(compiled, sample, evals, repeats)
        theirs = rate(baseline, sample, evals, repeats)
        figures[label] = (ours, theirs)
        print(f"{label:<20} {ours:>12,.0f} {theirs:>12,.0f} {ours / theirs:>6.2f}")

    stream = event_stream(events, rng)
    priors = history_of(stream)
    default = load_playbook(DEFAULT_PLAYBOOK.read_text(encoding="utf-8"))
    empty = load_playbook(EMPTY_PLAYBOOK)
    verdicts = sum(len(check_event(default, e, priors)) for e in stream)
    with_rules = check_rate(default, stream, priors, repeats)
    without = check_rate(empty, stream, priors, repeats)
    print()
    print(f"check_event on {len(stream):,} mixed events ({verdicts:,} verdicts with the default):")
    print(f"  default playbook  {with_rules:>12,.0f} events/s")
    print(f"  empty playbook    {without:>12,.0f} events/s")
    print(f"  ratio             {with_rules / without:>12.2f}")
    ours, theirs = figures["simple comparison"]
    print(
        f"RESULT evals_per_s={ours:.0f} baseline_evals_per_s={theirs:.0f} ratio={ours / theirs:.2f}"
    )


if __name__ == "__main__":
    main()
