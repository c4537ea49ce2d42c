"""Weighted pipeline, forecast categories, roll-ups and coverage, worked by hand."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hq_server.metrics.pipeline import (
    converted,
    coverage,
    forecast_category,
    summarize,
    weighted,
)
from shared.stages import DEFAULT_STAGES, FORECAST_CATEGORIES

RATES = {"CNY": Decimal("1"), "USD": Decimal("7.1"), "EUR": Decimal("7.75")}
rate = RATES.__getitem__


def deal(deal_id, stage, amount, currency="CNY", close=None, **extra) -> dict:
    status = stage if stage in ("won", "lost") else "open"
    row = {"id": deal_id, "stage": stage, "status": status, "amount": Decimal(amount)}
    row.update(currency=currency, expected_close=close, forecast_category=None, closed_at=None)
    row.update(extra)
    return row


def sample() -> list[dict]:
    return [
        deal("a", "lead", "1000", close=date(2026, 1, 20)),
        deal("b", "visit", "500", "USD", close=date(2026, 2, 10)),
        deal("c", "quote", "200", "EUR", close=date(2026, 2, 20)),
        deal("d", "won", "3000", closed_at=datetime(2026, 2, 5, 3, tzinfo=UTC)),
        deal("e", "lost", "800", closed_at=datetime(2026, 2, 6, 3, tzinfo=UTC)),
        deal("f", "lead", "400"),
    ]


def test_the_summary_of_a_small_book_matches_the_hand_arithmetic():
    s = summarize(sample(), DEFAULT_STAGES, rate, currency="CNY")
    # a 1000 × 0.1 = 100; b 500 USD × 7.1 = 3550, × 0.3 = 1065;
    # c 200 EUR × 7.75 = 1550, × 0.6 = 930; f 400 × 0.1 = 40.
    assert (s.open_count, s.open_amount, s.weighted_amount) == (4, Decimal("6500.00"), 2135)
    assert s.by_stage["lead"].amount == 1400 and s.by_stage["lead"].weighted == 140
    assert (s.by_stage["visit"].count, s.by_stage["visit"].weighted) == (1, 1065)
    assert (s.by_stage["quote"].amount, s.by_stage["quote"].weighted) == (1550, 930)
    assert list(s.by_month) == ["2026-01", "2026-02", "none"]
    assert s.by_month["2026-02"].amount == 3550 + 1550
    assert s.by_month["2026-02"].weighted == 1065 + 930
    assert (s.by_month["none"].count, s.by_month["none"].amount) == (1, 400)
    assert (s.won_count, s.won_amount) == (1, 3000)


def test_roll_ups_follow_the_salesforce_formulas():
    deals = [
        deal("p", "lead", "100"),
        deal("b", "quote", "200"),
        deal("c", "visit", "300", forecast_category="commit"),
        deal("w", "won", "400"),
        deal("o", "lead", "50", forecast_category="omitted"),
        deal("l", "lost", "70"),
    ]
    s = summarize(deals, DEFAULT_STAGES, rate)
    assert s.open_pipeline == 100 + 200 + 0 + 300  # pipeline + best case + most likely + commit
    assert s.best_case_forecast == 200 + 0 + 300 + 400  # best case + most likely + commit + closed
    assert s.commit_forecast == 300 + 400  # commit + closed
    assert s.category("omitted").amount == 50 + 70  # omitted: in no roll-up
    # The open amount is stage arithmetic and keeps the deal a rep marked omitted.
    assert s.open_amount == 100 + 200 + 300 + 50


def test_weighted_rounds_each_deal_half_up_before_summing():
    deals = [deal("x", "lead", "10.05"), deal("y", "lead", "10.05")]
    # Each: 10.05 × 0.1 = 1.005 → 1.01 (half up; half even would give 1.00).
    assert [weighted(d, DEFAULT_STAGES, rate) for d in deals] == [Decimal("1.01")] * 2
    # Per deal 1.01 + 1.01 = 2.02; rounding the sum 2.010 would give 2.01.
    assert summarize(deals, DEFAULT_STAGES, rate).weighted_amount == Decimal("2.02")


def test_weighted_applies_fx_and_probability_before_rounding():
    quote = deal("q", "quote", "100.02", "USD")
    # 100.02 × 7.1 = 710.142 → 710.14 shown; 710.142 × 0.6 = 426.0852 → 426.09
    # (rounding the converted amount first would give 710.14 × 0.6 = 426.084 → 426.08).
    assert converted(quote, rate) == Decimal("710.14")
    assert weighted(quote, DEFAULT_STAGES, rate) == Decimal("426.09")


def test_an_unknown_currency_is_named_in_the_error():
    with pytest.raises(KeyError, match="GBP"):
        summarize([deal("g", "lead", "10", "GBP")], DEFAULT_STAGES, rate)


def test_deals_in_the_reporting_currency_need_no_rate():
    usd_only = {"USD": Decimal("7.1")}.__getitem__
    deals = [deal("a", "lead", "10"), deal("b", "lead", "10", "USD")]
    s = summarize(deals, DEFAULT_STAGES, usd_only, currency="CNY")
    assert s.open_amount == Decimal("81.00")  # 10 + 10 × 7.1


def test_lost_deals_count_zero_not_their_full_value():
    lost = deal("l", "lost", "800")
    # The status decides, even where the stage column still names an open stage.
    lost_at_quote = deal("q", "quote", "500") | {"status": "lost"}
    s = summarize([lost, lost_at_quote], DEFAULT_STAGES, rate)
    assert weighted(lost, DEFAULT_STAGES, rate) == 0
    assert weighted(lost_at_quote, DEFAULT_STAGES, rate) == 0
    assert (s.open_count, s.open_amount, s.weighted_amount) == (0, 0, 0)
    assert (s.open_pipeline, s.best_case_forecast, s.commit_forecast) == (0, 0, 0)
    assert s.category("omitted").amount == 800 + 500


def test_won_deals_count_only_in_closed():
    won = deal("w", "won", "3000", forecast_category="commit")
    s = summarize([won], DEFAULT_STAGES, rate)
    assert forecast_category(won, DEFAULT_STAGES) == "closed"
    assert weighted(won, DEFAULT_STAGES, rate) == 0
    assert (s.open_count, s.weighted_amount, s.by_month) == (0, 0, {})
    assert s.category("closed").amount == 3000 and s.category("commit").amount == 0


def test_the_rep_override_wins_but_an_open_deal_is_never_closed():
    committed = deal("a", "lead", "1", forecast_category="commit")
    assert forecast_category(committed, DEFAULT_STAGES) == "commit"
    claimed = deal("b", "quote", "1", forecast_category="closed")
    assert forecast_category(claimed, DEFAULT_STAGES) == "best_case"


def test_a_deal_with_no_stage_yet_sits_in_the_first_stage():
    row = deal("n", None, "100")
    assert weighted(row, DEFAULT_STAGES, rate) == Decimal("10.00")
    assert summarize([row], DEFAULT_STAGES, rate).by_stage["lead"].count == 1


def test_an_unknown_stage_or_a_float_amount_is_refused():
    with pytest.raises(KeyError, match="demo"):
        weighted(deal("x", "demo", "1"), DEFAULT_STAGES, rate)
    with pytest.raises(TypeError, match="Decimal"):
        converted(deal("x", "lead", "1") | {"amount": 1.5}, rate)


def test_a_window_keeps_open_deals_by_expected_close_and_won_deals_by_close_day():
    deals = [
        *sample(),
        # Closed at 23:30 UTC on 31 January: 1 February in the branch's calendar.
        deal("late", "won", "70", closed_at=datetime(2026, 1, 31, 23, 30, tzinfo=UTC))
        | {"closed_day": date(2026, 2, 1)},
        deal("march", "won", "900", closed_at=datetime(2026, 3, 2, tzinfo=UTC)),
    ]
    s = summarize(
        deals, DEFAULT_STAGES, rate, close_from=date(2026, 2, 1), close_to=date(2026, 2, 28)
    )
    assert (s.open_count, s.open_amount) == (2, 3550 + 1550)  # b and c; a is January, f undated
    assert list(s.by_month) == ["2026-02"]
    assert (s.won_count, s.won_amount) == (2, 3000 + 70)  # d and late, not march
    assert s.category("omitted").amount == 800  # e lost on 6 February


def test_coverage_divides_open_pipeline_by_what_is_left_of_the_target():
    assert coverage(Decimal("900"), Decimal("1000"), Decimal("400")) == 900 / Decimal(600)
    assert coverage(Decimal("300"), Decimal("1000"), Decimal("400")) == Decimal("0.5")
    assert coverage(Decimal("300"), Decimal("1000"), Decimal("1000")) is None
    assert coverage(Decimal("300"), Decimal("1000"), Decimal("1200")) is None


def test_as_dict_is_json_with_money_as_exact_strings():
    s = summarize(sample(), DEFAULT_STAGES, rate, currency="CNY")
    data = json.loads(json.dumps(s.as_dict()))
    assert data["open"] == {"count": 4, "amount": "6500.00", "weighted": "2135.00"}
    assert data["rollups"] == {
        "open_pipeline": "6500.00",
        "best_case_forecast": "4550.00",  # 1550 + 0 + 0 + 3000
        "commit_forecast": "3000.00",
    }
    assert data["by_month"]["none"]["weighted"] == "40.00"
    assert data["won"] == {"count": 1, "amount": "3000.00"}


money = st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False)
days = st.none() | st.dates(date(2026, 1, 1), date(2026, 6, 30))
deal_rows = st.builds(
    lambda i, stage, amount, currency, close, category: deal(
        i, stage, amount, currency, close, forecast_category=category
    ),
    st.integers(),
    st.sampled_from([s.name for s in DEFAULT_STAGES]),
    money,
    st.sampled_from(sorted(RATES)),
    days,
    st.none() | st.sampled_from(FORECAST_CATEGORIES),
)


@given(st.lists(deal_rows, max_size=30))
def test_weighted_never_exceeds_the_open_amount(deals):
    for row in deals:
        assert weighted(row, DEFAULT_STAGES, rate) <= converted(row, rate)
    s = summarize(deals, DEFAULT_STAGES, rate)
    assert s.weighted_amount <= s.open_amount


@given(st.lists(deal_rows, max_size=30))
def test_categories_partition_the_deals(deals):
    s = summarize(deals, DEFAULT_STAGES, rate)
    assert set(s.by_category) == set(FORECAST_CATEGORIES)
    assert sum(line.count for line in s.by_category.values()) == len(deals)
    total = sum(converted(row, rate) for row in deals)
    assert sum(line.amount for line in s.by_category.values()) == total
    omitted_open = sum(
        converted(row, rate)
        for row in deals
        if row["status"] == "open" and forecast_category(row, DEFAULT_STAGES) == "omitted"
    )
    assert s.open_pipeline + omitted_open == s.open_amount


@given(st.lists(deal_rows, max_size=30))
def test_stages_and_months_split_the_same_open_deals(deals):
    s = summarize(deals, DEFAULT_STAGES, rate)
    for attr in ("count", "amount", "weighted"):
        by_stage = sum(getattr(line, attr) for line in s.by_stage.values())
        assert by_stage == sum(getattr(line, attr) for line in s.by_month.values())
    assert s.open_count == sum(1 for row in deals if row["status"] == "open")
