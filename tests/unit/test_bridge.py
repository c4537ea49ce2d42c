"""The pipeline change bridge balances exactly, and says which deals moved it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from hq_server.metrics.bridge import INFLOWS, MOVES, OUTFLOWS, Term, bridge
from hq_server.metrics.pipeline import cents

P_FROM, P_TO = date(2026, 3, 1), date(2026, 3, 31)
CNY = {"CNY": Decimal("1")}.__getitem__


def deal(status, amount, close=None, currency="CNY") -> dict:
    return {
        "status": status,
        "amount": Decimal(amount),
        "currency": currency,
        "expected_close": close,
    }


def mar(day: int) -> date:
    return date(2026, 3, day)


START = {
    "keep": deal("open", "1000", mar(10)),
    "grow": deal("open", "500", mar(5)),
    "shrink": deal("open", "700", mar(6)),
    "pulled": deal("open", "300", date(2026, 4, 2)),
    "reopened": deal("lost", "150", mar(1)),
    "pushed": deal("open", "900", mar(12)),
    "won": deal("open", "2000", mar(20)),
    "lost": deal("open", "400", mar(28)),
    "gone": deal("open", "50", mar(3)),
    "outside": deal("open", "999", date(2026, 5, 1)),
}
END = {
    "keep": deal("open", "1000", mar(20)),
    "grow": deal("open", "800", mar(5)),
    "shrink": deal("open", "600", mar(6)),
    "fresh": deal("open", "250", mar(15)),
    "pulled": deal("open", "350", mar(30)),
    "reopened": deal("open", "150", mar(25)),
    "pushed": deal("open", "1200", date(2026, 4, 15)),
    "won": deal("won", "2100", mar(20)),
    "lost": deal("lost", "400", mar(28)),
    "flash": deal("won", "75", mar(10)),
    "outside": deal("open", "999", date(2026, 5, 9)),
}


def test_each_kind_of_change_lands_in_its_term():
    b = bridge(START, END, P_FROM, P_TO, rate_start=CNY)
    # start: keep 1000 + grow 500 + shrink 700 + pushed 900 + won 2000 + lost 400 + gone 50
    assert (b.start.count, b.start.amount) == (7, 5550)
    assert (b.new.count, b.new.amount, b.new.ids) == (1, 250, ("fresh",))
    assert (b.pulled_in.count, b.pulled_in.amount) == (2, 350 + 150)
    assert b.pulled_in.ids == ("pulled", "reopened")
    assert (b.increased.count, b.increased.amount, b.increased.ids) == (0, 300, ("grow",))
    assert (b.decreased.count, b.decreased.amount, b.decreased.ids) == (0, 100, ("shrink",))
    # Leaving deals leave at their t0 amount: pushed 900 (now 1200), won 2000 (booked 2100).
    assert (b.pushed_out.count, b.pushed_out.amount) == (1, 900)
    assert (b.won.count, b.won.amount) == (1, 2000)
    assert (b.lost.count, b.lost.amount, b.lost.ids) == (2, 400 + 50, ("gone", "lost"))
    # end: keep 1000 + grow 800 + shrink 600 + fresh 250 + pulled 350 + reopened 150
    assert (b.end.count, b.end.amount) == (6, 3150)
    # 5550 + 250 + 500 + 300 − 100 − 900 − 2000 − 450 = 3150; 7 + 1 + 2 − 1 − 1 − 2 = 6
    assert b.check()


def test_a_deal_opened_and_closed_between_the_snapshots_is_in_no_term():
    b = bridge(START, END, P_FROM, P_TO, rate_start=CNY)
    every_id = {i for name in ("start", *INFLOWS, *OUTFLOWS, "end") for i in getattr(b, name).ids}
    assert "flash" not in every_id and "outside" not in every_id


def test_a_tampered_bridge_does_not_check():
    b = bridge(START, END, P_FROM, P_TO, rate_start=CNY)
    assert not replace(b, won=replace(b.won, amount=Decimal("1999.00"))).check()
    assert not replace(b, new=replace(b.new, count=2)).check()


def test_each_side_converts_at_its_own_rate():
    start = {"usd": deal("open", "100", mar(9), "USD")}
    end = {"usd": deal("open", "100", mar(9), "USD")}
    t0, t1 = {"USD": Decimal("7.0")}.__getitem__, {"USD": Decimal("7.2")}.__getitem__
    b = bridge(start, end, P_FROM, P_TO, rate_start=t0, rate_end=t1)
    # 100 × 7.0 = 700 at t0, 100 × 7.2 = 720 at t1: the rate move shows as increased.
    assert (b.start.amount, b.end.amount, b.increased.amount) == (700, 720, 20)
    steady = bridge(start, end, P_FROM, P_TO, rate_start=t0)
    assert steady.increased == Term() and steady.start.amount == steady.end.amount


def test_as_dict_is_json_and_says_whether_it_balances():
    b = bridge(START, END, P_FROM, P_TO, rate_start=CNY)
    data = json.loads(json.dumps(b.as_dict()))
    assert data["period"] == {"from": "2026-03-01", "to": "2026-03-31"}
    assert data["terms"]["lost"] == {"count": 2, "amount": "450.00", "ids": ["gone", "lost"]}
    assert list(data["terms"])[0] == "start" and list(data["terms"])[-1] == "end"
    assert data["balanced"] is True


RATES = {"CNY": Decimal("1"), "USD": Decimal("7.1")}
statuses = st.sampled_from(["open", "open", "won", "lost"])
amounts = st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False)
edges = st.sampled_from([P_FROM, P_TO, date(2026, 2, 28), date(2026, 4, 1)])
closes = st.none() | edges | st.dates(date(2026, 1, 15), date(2026, 5, 15))
states = st.none() | st.builds(deal, statuses, amounts, closes, st.sampled_from(sorted(RATES)))


@st.composite
def histories(draw) -> tuple[dict | None, dict | None]:
    """Draw a deal at t0 and at t1: unrelated, or the same deal with some fields changed."""
    before = draw(states)
    if before is None or draw(st.booleans()):
        return before, draw(states)
    after = dict(before)
    for key, values in (("amount", amounts), ("expected_close", closes), ("status", statuses)):
        if draw(st.booleans()):
            after[key] = draw(values)
    return before, after


books = st.dictionaries(st.integers(0, 15), histories(), max_size=16)
usd_rates = st.decimals(min_value=Decimal("6"), max_value=Decimal("8"), places=4)


def _open_in_p(row) -> bool:
    close = row and row["expected_close"]
    return bool(row) and row["status"] == "open" and close is not None and P_FROM <= close <= P_TO


def _sides(book):
    start = {i: s for i, (s, _) in book.items() if s is not None}
    end = {i: e for i, (_, e) in book.items() if e is not None}
    return start, end


@given(books, usd_rates, usd_rates)
def test_the_bridge_balances_exactly_in_count_and_amount(book, usd0, usd1):
    start, end = _sides(book)
    t0 = {**RATES, "USD": usd0}.__getitem__
    t1 = {**RATES, "USD": usd1}.__getitem__
    b = bridge(start, end, P_FROM, P_TO, rate_start=t0, rate_end=t1)
    for attr in ("count", "amount"):
        inflow = sum(getattr(getattr(b, name), attr) for name in INFLOWS)
        outflow = sum(getattr(getattr(b, name), attr) for name in OUTFLOWS)
        assert getattr(b.start, attr) + inflow - outflow == getattr(b.end, attr)
    assert b.check()
    expected_start = {i for i, row in start.items() if _open_in_p(row)}
    assert set(b.start.ids) == expected_start
    assert set(b.end.ids) == {i for i, row in end.items() if _open_in_p(row)}
    in_t0 = (cents(start[i]["amount"] * t0(start[i]["currency"])) for i in expected_start)
    assert b.start.amount == sum(in_t0)


@given(books)
def test_every_deal_moves_through_at_most_one_count_term(book):
    start, end = _sides(book)
    b = bridge(start, end, P_FROM, P_TO, rate_start=RATES.__getitem__)
    moved = [i for name in MOVES for i in getattr(b, name).ids]
    assert len(moved) == len(set(moved))
    for name in MOVES:
        assert getattr(b, name).count == len(getattr(b, name).ids)
    stayed = set(b.start.ids) & set(b.end.ids)
    assert set(moved) | stayed == set(b.start.ids) | set(b.end.ids)
    changed = set(b.increased.ids) | set(b.decreased.ids)
    assert changed <= stayed and not set(b.increased.ids) & set(b.decreased.ids)
    assert b.increased.amount >= 0 and b.decreased.amount >= 0
