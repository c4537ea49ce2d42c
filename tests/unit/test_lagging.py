"""Lagging-unit detection: funnel-plot limits, Poisson limits, run rule, silence, delay."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hq_server.metrics.lagging import (
    count_flags,
    count_reason,
    funnel_curve,
    overdispersion,
    quantile,
    rate_flags,
    rate_reason,
    silence_reason,
    silent_branch,
    timeliness,
    timeliness_reason,
    trend_reason,
    trend_run,
)

QUOTE_WON = ("quote→won", "报价→成交")
QUOTES = ("quotes", "次报价")
PEERS = [("B", 81, 300), ("C", 81, 300), ("D", 81, 300), ("E", 81, 300)]  # 27% each


def _by_code(flags):
    return {f.code: f for f in flags}


def test_a_clearly_lagging_branch_is_warned_with_its_numbers():
    flags = _by_code(rate_flags([("A", 7, 58), *PEERS]))
    a = flags["A"]
    p0 = (7 + 4 * 81) / (58 + 4 * 300)  # 331 / 1258 = 0.26312
    se = math.sqrt(p0 * (1 - p0) / 58)  # 0.057818
    assert a.p0 == pytest.approx(0.26312, abs=1e-5)
    assert a.z == pytest.approx((7 / 58 - p0) / se)
    assert a.z == pytest.approx(-2.463, abs=1e-3)
    assert a.lower_warn == pytest.approx(p0 - 2 * se)  # 0.14748
    assert a.lower_alert == pytest.approx(p0 - 3 * se)  # 0.08967
    assert a.phi < 1  # winsorised: (1.3699² + 4 · 0.2706²) / 5 = 0.434
    assert a.phi == pytest.approx(0.434, abs=1e-3)
    assert a.status == "warn"
    assert {f.status for c, f in flags.items() if c != "A"} == {"ok"}
    reason = rate_reason(a, QUOTE_WON, QUOTES)
    assert reason.en == "quote→won 12% on 58 quotes; peers 26%; lower limit 15% (z = −2.5)"
    assert reason.zh == "报价→成交 12%（58 次报价）；同级平均 26%；下限 15%（z = −2.5）"


def test_a_branch_far_below_the_alert_limit_is_an_alert_quoting_that_limit():
    a = _by_code(rate_flags([("A", 3, 58), *PEERS]))["A"]
    p0 = (3 + 324) / 1258  # 0.25994
    se = math.sqrt(p0 * (1 - p0) / 58)  # 0.057592
    assert a.z == pytest.approx((3 / 58 - p0) / se)  # -3.615
    assert a.phi == pytest.approx(0.934, abs=1e-3)  # still <= 1: no widening
    assert a.status == "alert"
    reason = rate_reason(a, QUOTE_WON, QUOTES, peers=("region", "区域平均"))
    assert reason.en == "quote→won 5% on 58 quotes; region 26%; lower limit 9% (z = −3.6)"


def test_a_rate_exactly_on_the_warn_limit_is_not_flagged():
    # p0 = (4 + 12 + 8 · 50) / (16 + 16 + 800) = 0.5; se at n = 16 is sqrt(0.25 / 16) = 0.125,
    # so 4/16 = 0.25 = p0 - 2 · se sits on the limit: z = -2 exactly.
    # Winsorised z: [-0.2, 0 x 8, 0.2], phi = 0.08 / 10 = 0.008, no widening.
    rows = [("A", 4, 16), ("B", 12, 16), *[(f"p{i}", 50, 100) for i in range(8)]]
    a = rate_flags(rows, min_n=16)[0]
    assert (a.z, a.lower_warn, a.phi) == (-2.0, 0.25, pytest.approx(0.008))
    assert a.status == "ok"


def test_a_small_noisy_branch_is_not_flagged():
    flags = _by_code(rate_flags([("S", 1, 5), *PEERS]))
    assert flags["S"].status == "insufficient"
    assert "too few to judge" in rate_reason(flags["S"], QUOTE_WON, QUOTES).en
    # Even when allowed, its limits are wide: p0 = 325/1205 = 0.2697, se = sqrt(p0·q/5) = 0.1985.
    s = _by_code(rate_flags([("S", 1, 5), *PEERS], min_n=1))["S"]
    p0 = 325 / 1205
    assert s.lower_warn == 0.0  # p0 - 2 · 0.1985 < 0, clamped
    assert s.z == pytest.approx((0.2 - p0) / math.sqrt(p0 * (1 - p0) / 5))  # -0.35
    assert s.status == "ok"


def test_a_unit_well_above_its_peers_is_reported_as_above():
    b = _by_code(rate_flags([("A", 60, 100), *PEERS]))["A"]
    assert b.status == "above"
    assert "upper limit" in rate_reason(b, QUOTE_WON, QUOTES).en


def test_overdispersion_widens_limits_and_shrinks_z_by_sqrt_phi():
    xs = [10, 15, 20, 25, 30, 35, 40, 45, 50, 55]
    flags = rate_flags([(f"u{x}", x, 100) for x in xs])
    p0 = sum(xs) / 1000  # 0.325
    se = math.sqrt(p0 * (1 - p0) / 100)  # 0.046837
    raw = [(x / 100 - p0) / se for x in xs]  # -4.804 ... 4.804, already sorted
    lo = raw[0] + 0.9 * (raw[1] - raw[0])  # 10th percentile, type 7: position 0.9
    hi = raw[8] + 0.1 * (raw[9] - raw[8])  # 90th percentile: position 8.1
    phi = sum(min(hi, max(lo, z)) ** 2 for z in raw) / 10  # 7.74
    assert phi == pytest.approx(7.74, abs=0.01)
    for flag, z in zip(flags, raw, strict=True):
        assert flag.phi == pytest.approx(phi)
        assert flag.z == pytest.approx(z / math.sqrt(phi))
        assert flag.lower_warn == pytest.approx(max(0.0, p0 - 2 * math.sqrt(phi) * se))
    assert flags[0].z == pytest.approx(-1.727, abs=1e-3)  # raw -4.8, but peers spread widely
    assert {f.status for f in flags} == {"ok"}
    assert "φ = 7.7" in rate_reason(flags[0], QUOTE_WON, QUOTES).en


def test_overdispersion_is_the_mean_of_winsorised_squares():
    assert overdispersion([]) is None
    assert overdispersion([3.0]) == 9.0
    # Ten scores 0..9: clipped to [0.9, 8.1], squares sum to 0.81 + 1+4+...+64 + 65.61 = 270.42
    assert overdispersion([float(i) for i in range(10)]) == pytest.approx(27.042)


def test_a_peer_rate_of_zero_or_one_flags_nobody():
    for x in (0, 40):
        flags = rate_flags([("A", x, 40), ("B", x * 2, 80), ("C", 0 if x == 0 else 1, 1)])
        assert [f.status for f in flags] == ["ok", "ok", "insufficient"]
        assert flags[0].z is None and flags[0].phi is None
        assert flags[0].lower_alert == flags[0].upper_alert == x / 40
        assert rate_reason(flags[0], QUOTE_WON, QUOTES).en.endswith("peers " + f"{x / 40:.0%}")


def test_units_without_trials_and_lone_or_equal_units_are_handled():
    empty, lone = rate_flags([("A", 0, 0), ("B", 10, 40)])
    assert (empty.rate, empty.z, empty.lower_warn) == (None, None, None)
    assert empty.status == "insufficient"
    assert rate_reason(empty, QUOTE_WON, QUOTES).en.startswith("quote→won n/a on 0 quotes")
    assert (lone.p0, lone.z, lone.phi, lone.status) == (0.25, 0.0, 0.0, "ok")
    equal = rate_flags([(c, 5, 25) for c in "ABCDE"])
    assert {(f.z, f.phi, f.status) for f in equal} == {(0.0, 0.0, "ok")}
    nobody = rate_flags([("A", 1, 5)])
    assert (nobody[0].p0, nobody[0].z, nobody[0].status) == (None, None, "insufficient")
    assert rate_flags([]) == []


def test_impossible_counts_are_refused():
    with pytest.raises(ValueError, match="x=6, n=5"):
        rate_flags([("A", 6, 5)])
    with pytest.raises(ValueError, match="negative"):
        count_flags([("r1", -1)])


def test_funnel_curve_gives_the_four_limits_per_n():
    (point,) = funnel_curve(0.5, None, [100])  # se = 0.05
    assert (point.lower_alert, point.lower_warn) == pytest.approx((0.35, 0.4))
    assert (point.upper_warn, point.upper_alert) == pytest.approx((0.6, 0.65))
    (wide,) = funnel_curve(0.5, 4.0, [100])  # se = sqrt(4) · 0.05 = 0.1
    assert (wide.lower_alert, wide.upper_alert) == pytest.approx((0.2, 0.8))
    assert funnel_curve(0.5, 0.3, [100]) == [point]  # φ below 1 never narrows
    (tiny,) = funnel_curve(0.5, 1.0, [1, 0])  # n = 0 has no limits; n = 1 is clamped
    assert (tiny.n, tiny.lower_alert, tiny.upper_alert) == (1, 0.0, 1.0)


def test_curve_matches_the_limits_of_each_flagged_unit():
    flags = rate_flags([("A", 7, 58), *PEERS])
    curve = funnel_curve(flags[0].p0, flags[0].phi, [58, 300])
    assert [(p.lower_warn, p.upper_alert) for p in curve] == [
        (f.lower_warn, f.upper_alert) for f in flags[:2]
    ]


def test_a_rep_far_below_the_peer_mean_and_the_minimum_is_flagged_twice():
    flags = _by_code(count_flags([("a", 2), ("b", 10), ("c", 12), ("d", 12), ("e", 14)], 10))
    # λ0 = 50 / 5 = 10, sqrt(λ0) = 3.1623
    assert flags["a"].lam0 == 10
    assert flags["a"].z == pytest.approx(-8 / math.sqrt(10))  # -2.53
    assert flags["a"].lower_warn == pytest.approx(10 - 2 * math.sqrt(10))  # 3.68
    assert flags["a"].lower_alert == pytest.approx(10 - 3 * math.sqrt(10))  # 0.51
    assert (flags["a"].status, flags["a"].below_minimum) == ("warn", True)
    assert (flags["b"].status, flags["b"].below_minimum) == ("ok", False)  # 10 is not below 10
    reason = count_reason(flags["a"], ("visits this week", "本周拜访"))
    assert reason.en == (
        "visits this week 2; peers 10; lower limit 3.7 (z = −2.5); below the playbook minimum of 10"
    )
    assert reason.zh == "本周拜访 2；同级平均 10；下限 3.7（z = −2.5）；低于规定最低 10"


def test_count_statuses_cover_alert_above_and_no_activity():
    alert = count_flags([("a", 0), ("b", 12), ("c", 12), ("d", 12), ("e", 14)])
    assert alert[0].z == pytest.approx(-10 / math.sqrt(10))  # -3.16
    assert alert[0].status == "alert" and alert[0].below_minimum is False
    above = count_flags([("a", 30), ("b", 5), ("c", 5), ("d", 5), ("e", 5)])  # λ0 = 10, z = 6.3
    assert above[0].status == "above"
    assert "upper limit" in count_reason(above[0], ("visits", "拜访")).en
    idle = count_flags([("a", 0), ("b", 0)], minimum=1)
    assert [(f.z, f.status, f.below_minimum) for f in idle] == [(None, "ok", True)] * 2
    assert count_flags([]) == []


def test_trend_flags_three_weeks_below_the_earlier_median():
    flag = trend_run([10] * 8 + [7, 7, 7])
    assert (flag.flagged, flag.baseline, flag.run_length) == (True, 10, 3)
    reason = trend_reason(flag, ("visits", "拜访"))
    assert reason.en == "visits below its own 8-week median (10) for 3 weeks"
    assert reason.zh == "拜访 连续 3 周低于自身前 8 周中位数（10）"


def test_trend_counts_a_longer_run_and_ignores_short_or_broken_ones():
    # Baseline weeks are [10]*6 + [7, 7]: median 10; all five 7s are below it.
    assert trend_run([10] * 6 + [7] * 5).run_length == 5
    assert trend_run([10] * 9 + [7, 7]).flagged is False
    assert trend_run([10] * 8 + [7, 7, 7, 12]).run_length == 0
    assert trend_run([10] * 11).flagged is False  # equal to the median is not below it
    short = trend_run([10] * 7 + [1, 1, 1])
    assert (short.flagged, short.baseline) == (False, None)
    assert "not enough weeks" in trend_reason(short, ("visits", "拜访")).en
    assert trend_run([5, 5, 1, 1], window=2, run=2).flagged is True


def test_a_silent_branch_is_flagged_past_its_limit_or_when_it_never_pushed():
    assert silent_branch(24.0, 24.0).flagged is False
    late = silent_branch(30.5, 24.0)
    assert late.flagged is True
    assert silence_reason(late).en == "no data pushed for 30.5 working hours (limit 24)"
    assert silence_reason(late).zh == "已 30.5 个工作小时未上传数据（上限 24）"
    never = silent_branch(None, 24.0)
    assert never.flagged is True
    assert silence_reason(never).zh == "从未上传数据"


def test_timeliness_reports_median_and_p90_lag():
    lags = [60.0 * i for i in range(1, 11)]  # 1..10 minutes
    ok = timeliness(lags, 600)
    # median (300 + 360) / 2; p90 at position 9 · 0.9 = 8.1: 540 + 0.1 · 60
    assert (ok.count, ok.median, ok.p90, ok.flagged) == (10, 330, pytest.approx(546), False)
    assert timeliness(lags, 500).flagged is True
    assert timeliness_reason(ok).en == (
        "90% of 10 events arrived within 9.1 min (limit 10 min); median 5.5 min"
    )
    assert timeliness_reason(timeliness([9000.0], 60)).zh == (
        "1 个事件中 90% 在 2.5 小时内到达（上限 60 秒）；中位数 2.5 小时"
    )
    none = timeliness([], 600)
    assert (none.median, none.p90, none.flagged) == (None, None, False)


def test_quantile_interpolates_linearly():
    assert quantile([4, 1, 3, 2], 0.5) == 2.5
    assert quantile([7], 0.9) == 7
    with pytest.raises(ValueError):
        quantile([], 0.5)


units = st.lists(
    st.integers(1, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    min_size=1,
    max_size=12,
).map(lambda rows: [(f"u{i}", x, n) for i, (x, n) in enumerate(rows)])


@given(units)
def test_a_rate_is_outside_a_limit_exactly_when_its_z_is(rows):
    for f in rate_flags(rows, min_n=1):
        if f.z is None:
            continue
        for bound, below in ((-2, f.rate < f.lower_warn), (-3, f.rate < f.lower_alert)):
            if abs(f.z - bound) > 1e-9:
                assert below == (f.z < bound)
        if abs(f.z - 2) > 1e-9:
            assert (f.rate > f.upper_warn) == (f.z > 2)


@given(units, st.randoms(use_true_random=False))
def test_flags_do_not_depend_on_the_order_of_the_units(rows, rnd):
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    before = {f.code: (f.status, f.z, f.phi) for f in rate_flags(rows)}
    assert {f.code: (f.status, f.z, f.phi) for f in rate_flags(shuffled)} == before


@given(st.lists(st.integers(20, 200), min_size=2, max_size=10), st.integers(2, 4), st.data())
def test_scaling_every_count_keeps_p0_and_grows_z_by_sqrt_k(sizes, k, data):
    rows = [
        (f"u{i}", round(0.3 * n) + data.draw(st.integers(-1, 1)), n) for i, n in enumerate(sizes)
    ]
    small = rate_flags(rows)
    large = rate_flags([(c, k * x, k * n) for c, x, n in rows])
    assume(large[0].phi is not None and large[0].phi <= 1)
    assert small[0].phi <= 1  # φ grows k-fold with the counts
    for s, g in zip(small, large, strict=True):
        assert g.p0 == pytest.approx(s.p0)
        assert abs(g.z) == pytest.approx(abs(s.z) * math.sqrt(k), abs=1e-9)


@given(units, st.integers(1, 60))
def test_units_below_the_minimum_size_are_never_flagged(rows, min_n):
    for f in rate_flags(rows, min_n=min_n):
        assert (f.status == "insufficient") == (f.n < min_n)


@given(st.lists(st.integers(0, 500), min_size=1, max_size=30), st.integers(0, 50))
def test_poisson_lower_limits_are_never_negative(counts, minimum):
    for f in count_flags([(f"r{i}", c) for i, c in enumerate(counts)], minimum):
        assert 0 <= f.lower_alert <= f.lower_warn <= f.lam0
        assert f.below_minimum == (f.count < minimum)
