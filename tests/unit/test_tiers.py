"""Performer tiers: top 25% / middle 50% / bottom 25% by mid-rank percentile."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hq_server.metrics.tiers import percentile_ranks, performer_tiers, tier_stability

ORDER = {"bottom": 0, "middle": 1, "top": 2}


def test_eight_units_split_two_four_two():
    values = {c: v for v, c in enumerate("abcdefgh", start=1)}  # a=1 ... h=8
    # PR = (i + 0.5) / 8: 0.0625, 0.1875 < 0.25 < 0.3125 ... 0.6875 < 0.75 < 0.8125, 0.9375
    assert percentile_ranks(values)["a"] == 0.0625
    tiers = performer_tiers(values)
    assert [tiers[c] for c in "abcdefgh"] == ["bottom"] * 2 + ["middle"] * 4 + ["top"] * 2


def test_lower_is_better_reverses_the_tiers():
    values = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}  # PR 0.125, 0.375, 0.625, 0.875
    assert performer_tiers(values) == {"a": "bottom", "b": "middle", "c": "middle", "d": "top"}
    reverse = performer_tiers(values, higher_is_better=False)
    assert reverse == {"a": "top", "b": "middle", "c": "middle", "d": "bottom"}


def test_equal_values_share_a_rank_and_a_tier():
    values = {"a": 1, "b": 1, "c": 2, "d": 3, "e": 4, "f": 5, "g": 6, "h": 6}
    # a, b: (0 + 2/2) / 8 = 0.125; g, h: (6 + 2/2) / 8 = 0.875
    ranks = percentile_ranks(values)
    assert ranks["a"] == ranks["b"] == 0.125
    assert ranks["g"] == ranks["h"] == 0.875
    tiers = performer_tiers(values)
    assert (tiers["a"], tiers["b"], tiers["g"], tiers["h"]) == ("bottom", "bottom", "top", "top")


def test_a_tie_covering_a_quarter_of_the_group_stays_in_the_middle():
    values = {"a": 0, "b": 0, "c": 1, "d": 2, "e": 3, "f": 4, "g": 5, "h": 6}
    # a, b: (0 + 2/2) / 8 = 0.125 -> bottom; with four zeros: (0 + 4/2) / 8 = 0.25 -> middle
    assert performer_tiers(values)["a"] == "bottom"
    assert performer_tiers({**values, "c": 0, "d": 0})["a"] == "middle"


def test_missing_values_are_left_out_and_tiny_groups_are_all_middle():
    assert set(performer_tiers({"a": 1, "b": None, "c": 3, "d": 4, "e": 9})) == set("acde")
    assert performer_tiers({"a": 1, "b": 50, "c": 99}) == dict.fromkeys("abc", "middle")
    assert performer_tiers({"a": 1, "b": 2, "c": 3, "d": 4, "e": None}, min_units=5) == (
        dict.fromkeys("abcd", "middle")
    )
    assert performer_tiers({}) == {}
    assert percentile_ranks({"a": None}) == {}


def test_tier_stability_is_the_share_of_common_units_that_kept_their_tier():
    before = {"a": "top", "b": "middle", "c": "bottom"}
    after = {"a": "top", "b": "bottom", "d": "top"}
    assert tier_stability(before, after) == 0.5  # a kept, b moved; c and d not in both
    assert tier_stability(before, before) == 1.0
    assert tier_stability(before, {"z": "top"}) is None


kpis = st.dictionaries(
    st.text("abcdefghij", min_size=1, max_size=3),
    st.one_of(st.none(), st.integers(-50, 50), st.floats(-1e6, 1e6)),
    max_size=30,
)


@given(kpis, st.booleans())
def test_tiers_partition_exactly_the_units_with_a_value(values, higher_is_better):
    tiers = performer_tiers(values, higher_is_better)
    assert tiers.keys() == {c for c, v in values.items() if v is not None}
    assert set(tiers.values()) <= set(ORDER)


@given(kpis, st.booleans())
def test_a_better_value_never_gets_a_lower_tier(values, higher_is_better):
    tiers = performer_tiers(values, higher_is_better)
    sign = 1 if higher_is_better else -1
    for a in tiers:
        for b in tiers:
            if sign * values[a] > sign * values[b]:
                assert ORDER[tiers[a]] >= ORDER[tiers[b]]
            if values[a] == values[b]:
                assert tiers[a] == tiers[b]


@given(st.lists(st.floats(-1e6, 1e6), min_size=8, max_size=60, unique=True))
def test_distinct_values_split_about_25_50_25(numbers):
    tiers = list(performer_tiers({f"u{i}": v for i, v in enumerate(numbers)}).values())
    size = len(numbers)
    assert abs(tiers.count("top") - size / 4) <= 0.5
    assert abs(tiers.count("bottom") - size / 4) <= 0.5
    assert tiers.count("top") == tiers.count("bottom")


@given(kpis)
def test_reversing_the_direction_swaps_top_and_bottom(values):
    swap = {"top": "bottom", "bottom": "top", "middle": "middle"}
    forward = performer_tiers(values)
    assert performer_tiers(values, higher_is_better=False) == {
        c: swap[t] for c, t in forward.items()
    }


@given(kpis)
def test_percentile_ranks_lie_strictly_between_zero_and_one(values):
    for rank in percentile_ranks(values).values():
        assert 0 < rank < 1


@pytest.mark.parametrize("size", [8, 9, 10, 11, 12, 13, 100])
def test_outer_tiers_hold_a_quarter_rounded(size):
    tiers = list(performer_tiers({f"u{i}": i for i in range(size)}).values())
    # bottom: units i with (i + 0.5) / size < 0.25, i.e. i < (size - 2) / 4
    expected = -(-(size - 2) // 4)
    assert tiers.count("bottom") == tiers.count("top") == expected
