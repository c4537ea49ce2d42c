"""Seq gap tracking, funnel arithmetic and rollup increments."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from hq_server.metrics.deal_rollups import EDGES, bucket_of
from hq_server.metrics.funnel import funnel_steps, win_rate
from hq_server.metrics.rollups import increments
from hq_server.metrics.seqgaps import missing_count, update_gaps


@given(st.lists(st.lists(st.integers(1, 60), max_size=15), max_size=6))
def test_gaps_are_exactly_the_unseen_seqs_below_the_maximum(batches):
    max_seq, gaps, seen = 0, [], set()
    for batch in batches:
        max_seq, gaps = update_gaps(max_seq, gaps, batch)
        seen |= set(batch)
    missing = {s for a, b in gaps for s in range(a, b + 1)}
    assert max_seq == max(seen, default=0)
    assert missing == set(range(1, max_seq + 1)) - seen
    assert missing_count(gaps) == len(missing)


def test_funnel_steps_and_win_rate():
    steps = funnel_steps(["lead", "visit", "won"], {"lead": 10, "visit": 4, "won": 1})
    assert [s["conversion_to_next"] for s in steps] == [0.4, 0.25, None]
    assert funnel_steps(["lead", "won"], {})[0]["conversion_to_next"] is None
    assert win_rate(3, 1) == 0.75
    assert win_rate(0, 0) is None


def test_rollup_increments_count_flags_and_amounts():
    call = {"type": "call.logged", "data": {"connected": True, "reached_decision_maker": False}}
    won = {"type": "deal.won", "data": {"amount": Decimal("12.50")}}
    assert increments(call) == {"events": 1, "calls": 1, "calls_connected": 1}
    assert increments(won) == {"events": 1, "deals_won": 1, "won_amount": Decimal("12.50")}


# What each event type counts, written out here apart from the module's own tables.
EXPECTED_COUNTS = {
    "lead.created": {"leads_created"},
    "lead.assigned": {"leads_assigned"},
    "lead.recycled": {"leads_recycled"},
    "call.logged": {"calls"},
    "visit.logged": {"visits"},
    "quote.issued": {"quotes"},
    "deal.opened": {"deals_opened"},
    "deal.stage_changed": {"stage_changes"},
    "deal.updated": set(),
    "deal.won": {"deals_won"},
    "deal.lost": {"deals_lost"},
    "payment.failed": {"payments_failed"},
}
FLAGS = {
    "connected": ("call.logged", "calls_connected"),
    "reached_decision_maker": ("call.logged", "calls_decision_maker"),
    "presented": ("call.logged", "calls_presented"),
    "decision_maker_met": ("visit.logged", "visits_decision_maker"),
}
AMOUNTS = {
    "quote.issued": "quote_amount",
    "deal.opened": "opened_amount",
    "deal.won": "won_amount",
    "payment.failed": "failed_payment_amount",
}


@given(
    st.sampled_from(sorted(EXPECTED_COUNTS)),
    st.fixed_dictionaries({}, optional={f: st.booleans() for f in FLAGS}),
    st.none() | st.decimals(min_value=0, max_value=10**6, places=2),
)
def test_every_type_counts_its_metrics_flags_and_amount(kind, flags, amount):
    data = dict(flags)
    if amount is not None:
        data["amount"] = amount
    expected = dict.fromkeys({"events", *EXPECTED_COUNTS[kind]}, Decimal(1))
    expected |= {m: Decimal(1) for f, (k, m) in FLAGS.items() if k == kind and data.get(f)}
    if kind in AMOUNTS and amount is not None:
        expected[AMOUNTS[kind]] = amount
    assert increments({"type": kind, "data": data}) == expected


@given(st.one_of(st.floats(-10, 1000, allow_nan=False), st.sampled_from(EDGES)))
def test_a_duration_falls_in_the_bucket_whose_edges_hold_it(days):
    i = bucket_of(days)
    upper = EDGES[i + 1] if i + 1 < len(EDGES) else float("inf")
    if days < 0:  # a step reached out of order: the first bucket
        assert i == 0
    else:
        assert EDGES[i] <= days < upper
