"""Flag lagging units: funnel-plot limits, Poisson limits, run rule, silence, delay.

Rates follow Spiegelhalter's funnel plot ("Funnel plots for comparing institutional
performance", Stat Med 2005): a unit is judged against the pooled rate of its peers with
limits that widen as its count shrinks, so small units are not ranked on noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

WARN_Z = 2.0
ALERT_Z = 3.0
WINSOR = 0.10
MINUS = "\u2212"
# z multipliers in the order of the limit fields: lower_warn, lower_alert, upper_warn, upper_alert
_ZS = (-WARN_Z, -ALERT_Z, WARN_Z, ALERT_Z)


@dataclass(frozen=True)
class Reason:
    """Why a unit was (or was not) flagged, in English and Chinese."""

    en: str
    zh: str


@dataclass(frozen=True)
class RateFlag:
    """One unit's rate against the funnel-plot limits of its peers."""

    code: str
    x: int
    n: int
    rate: float | None
    p0: float | None
    z: float | None
    lower_warn: float | None
    lower_alert: float | None
    upper_warn: float | None
    upper_alert: float | None
    phi: float | None
    status: str


@dataclass(frozen=True)
class CurvePoint:
    """The four funnel-plot limits at one denominator ``n``."""

    n: int
    lower_warn: float
    lower_alert: float
    upper_warn: float
    upper_alert: float


@dataclass(frozen=True)
class CountFlag:
    """One rep's count against Poisson limits of the peer mean and the playbook minimum."""

    code: str
    count: int
    lam0: float
    z: float | None
    lower_warn: float
    lower_alert: float
    upper_warn: float
    upper_alert: float
    minimum: float | None
    below_minimum: bool
    status: str


@dataclass(frozen=True)
class TrendFlag:
    """Whether the latest weeks sit below the unit's own earlier median."""

    flagged: bool
    baseline: float | None
    run_length: int
    window: int


@dataclass(frozen=True)
class SilenceFlag:
    """Whether a branch has gone quiet for longer than allowed."""

    flagged: bool
    hours_silent: float | None
    limit_hours: float


@dataclass(frozen=True)
class Timeliness:
    """How late events reach HQ: median and 90th-percentile lag in seconds."""

    count: int
    median: float | None
    p90: float | None
    limit: float
    flagged: bool


def quantile(values: Iterable[float], q: float) -> float:
    """Return the ``q`` quantile by linear interpolation (R type 7, Excel PERCENTILE.INC)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("quantile of no values")
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def overdispersion(z_scores: Sequence[float]) -> float | None:
    """Return φ, the mean squared z after 10% winsorising, or None without scores.

    As in Spiegelhalter (Qual Saf Health Care 2005;14:347-351): scores below the 10th
    percentile are set to it and scores above the 90th are set to it (``quantile``,
    type 7), then ``φ = Σ z² / k`` over all k scores.
    """
    if not z_scores:
        return None
    lo, hi = quantile(z_scores, WINSOR), quantile(z_scores, 1 - WINSOR)
    # Summed in sorted order so the result does not depend on the order of the units.
    return sum(min(hi, max(lo, z)) ** 2 for z in sorted(z_scores)) / len(z_scores)


def _limits(p0: float, phi: float, n: int) -> tuple[float, ...]:
    """Return the four limits at ``n`` in field order, widened by φ > 1, within [0, 1]."""
    se = math.sqrt(max(phi, 1.0) * p0 * (1 - p0) / n)
    return tuple(min(1.0, max(0.0, p0 + z * se)) for z in _ZS)


def funnel_curve(p0: float, phi: float | None, n_values: Iterable[int]) -> list[CurvePoint]:
    """Return the funnel-plot limits at each positive ``n``, widened when φ > 1."""
    return [CurvePoint(n, *_limits(p0, phi or 1.0, n)) for n in n_values if n > 0]


def _raw_z(x: int, n: int, p0: float | None) -> float | None:
    """Return the unadjusted z of ``x / n`` against ``p0``, None without variance."""
    if n <= 0 or p0 is None or not 0 < p0 < 1:
        return None
    return (x / n - p0) / math.sqrt(p0 * (1 - p0) / n)


def _status(z: float | None, eligible: bool = True) -> str:
    """Return the status word for a z score; only the low side flags."""
    if not eligible:
        return "insufficient"
    if z is None:
        return "ok"
    if z < -ALERT_Z:
        return "alert"
    if z < -WARN_Z:
        return "warn"
    return "above" if z > WARN_Z else "ok"


def rate_flags(units: Sequence[tuple[str, int, int]], min_n: int = 20) -> list[RateFlag]:
    """Return each unit's rate judged against its peers' pooled rate, in input order.

    Only units with ``n >= min_n`` (and n > 0) enter ``p0`` and φ and can be flagged;
    smaller ones still get z and limits for the plot, with status ``"insufficient"``.
    When φ > 1 the limits widen by ``sqrt(φ)`` and z is divided by it.
    """
    for code, x, n in units:
        if not 0 <= x <= n:
            raise ValueError(f"{code}: need 0 <= x <= n, got x={x}, n={n}")
    floor = max(min_n, 1)
    eligible = [(x, n) for _, x, n in units if n >= floor]
    total = sum(n for _, n in eligible)
    p0 = sum(x for x, _ in eligible) / total if total else None
    raw = [_raw_z(x, n, p0) for x, n in eligible]
    phi = overdispersion([z for z in raw if z is not None])
    inflation = max(phi or 1.0, 1.0)
    return [_rate_flag(code, x, n, p0, phi, inflation, n >= floor) for code, x, n in units]


def _rate_flag(
    code: str, x: int, n: int, p0: float | None, phi: float | None, inflation: float, ok_n: bool
) -> RateFlag:
    """Return one unit's flag given the peer rate and the variance inflation."""
    z = _raw_z(x, n, p0)
    if z is not None:
        z /= math.sqrt(inflation)
    lims: tuple[float | None, ...] = (None,) * 4
    if p0 is not None and n > 0:
        lims = _limits(p0, inflation, n)
    rate = x / n if n else None
    return RateFlag(code, x, n, rate, p0, z, *lims, phi=phi, status=_status(z, ok_n))


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.0f}%"


def _z(v: float) -> str:
    text = f"{v:.1f}"
    return "0.0" if text == "-0.0" else text.replace("-", MINUS)


def _num(v: float) -> str:
    return _z(v).rstrip("0").rstrip(".")


def rate_reason(
    flag: RateFlag,
    label: tuple[str, str],
    noun: tuple[str, str],
    peers: tuple[str, str] = ("peers", "同级平均"),
) -> Reason:
    """Return the sentence behind a rate flag, e.g. ``quote→won 12% on 58 quotes; …``.

    ``label`` names the metric and ``noun`` the denominator, each as (en, zh); the zh noun
    carries its measure word (``"次报价"``).
    """
    rate = _pct(flag.rate)
    en = f"{label[0]} {rate} on {flag.n} {noun[0]}"
    zh = f"{label[1]} {rate}（{flag.n} {noun[1]}）"
    if flag.p0 is not None:
        en, zh = f"{en}; {peers[0]} {_pct(flag.p0)}", f"{zh}；{peers[1]} {_pct(flag.p0)}"
    if flag.status == "insufficient":
        return Reason(f"{en}; too few to judge", f"{zh}；样本不足，暂不判断")
    if flag.z is None:
        return Reason(en, zh)
    side_en, side_zh, limit = "lower limit", "下限", flag.lower_warn
    if flag.status == "alert":
        limit = flag.lower_alert
    elif flag.status == "above":
        side_en, side_zh, limit = "upper limit", "上限", flag.upper_warn
    z = _z(flag.z)
    en = f"{en}; {side_en} {_pct(limit)} (z = {z})"
    zh = f"{zh}；{side_zh} {_pct(limit)}（z = {z}）"
    if flag.phi is not None and flag.phi > 1:
        phi = f"φ = {flag.phi:.1f}"
        en = f"{en}; limits widened for peer spread ({phi})"
        zh = f"{zh}；已按同级离散度放宽（{phi}）"
    return Reason(en, zh)


def count_flags(counts: Sequence[tuple[str, int]], minimum: float | None = None) -> list[CountFlag]:
    """Return each rep's count against Poisson limits ``λ0 ± z·sqrt(λ0)`` and the minimum.

    ``λ0`` is the mean count of all reps given, the rep itself included. Lower limits are
    floored at 0. ``below_minimum`` (count < minimum) is independent of the peer status.
    """
    for code, count in counts:
        if count < 0:
            raise ValueError(f"{code}: negative count {count}")
    if not counts:
        return []
    lam0 = sum(c for _, c in counts) / len(counts)
    sd = math.sqrt(lam0)
    lims = tuple(max(0.0, lam0 + z * sd) for z in _ZS)
    flags = []
    for code, count in counts:
        z = (count - lam0) / sd if sd else None
        below = minimum is not None and count < minimum
        flags.append(CountFlag(code, count, lam0, z, *lims, minimum, below, _status(z)))
    return flags


def count_reason(
    flag: CountFlag, label: tuple[str, str], peers: tuple[str, str] = ("peers", "同级平均")
) -> Reason:
    """Return the sentence behind a count flag, e.g. ``visits this week 2; peers 10; …``."""
    lam0 = _num(flag.lam0)
    en = f"{label[0]} {flag.count}; {peers[0]} {lam0}"
    zh = f"{label[1]} {flag.count}；{peers[1]} {lam0}"
    if flag.z is not None and flag.status in ("warn", "alert", "above"):
        side = {"warn": flag.lower_warn, "alert": flag.lower_alert, "above": flag.upper_warn}
        limit, z = _num(side[flag.status]), _z(flag.z)
        word_en, word_zh = ("upper", "上限") if flag.status == "above" else ("lower", "下限")
        en, zh = f"{en}; {word_en} limit {limit} (z = {z})", f"{zh}；{word_zh} {limit}（z = {z}）"
    if flag.below_minimum and flag.minimum is not None:
        low = _num(flag.minimum)
        en, zh = f"{en}; below the playbook minimum of {low}", f"{zh}；低于规定最低 {low}"
    return Reason(en, zh)


def trend_run(values: Sequence[float], window: int = 8, run: int = 3) -> TrendFlag:
    """Return whether the last ``run`` weeks all sit below the median of the ``window`` before.

    ``values`` run oldest to newest. The baseline is the median of the ``window`` weeks
    preceding the last ``run``; ``run_length`` counts the newest weeks strictly below it
    (it may reach back into the baseline weeks). Short histories are never flagged.
    """
    if len(values) < window + run:
        return TrendFlag(False, None, 0, window)
    baseline = statistics.median(values[-(window + run) : -run])
    length = 0
    for value in reversed(values):
        if value >= baseline:
            break
        length += 1
    return TrendFlag(length >= run, baseline, length, window)


def trend_reason(flag: TrendFlag, label: tuple[str, str]) -> Reason:
    """Return the sentence behind a trend flag."""
    if flag.baseline is None:
        return Reason(f"{label[0]}: not enough weeks to judge", f"{label[1]}：周数不足，暂不判断")
    base, weeks, w = _num(flag.baseline), flag.run_length, flag.window
    return Reason(
        f"{label[0]} below its own {w}-week median ({base}) for {weeks} weeks",
        f"{label[1]} 连续 {weeks} 周低于自身前 {w} 周中位数（{base}）",
    )


def silent_branch(hours_silent: float | None, limit_hours: float) -> SilenceFlag:
    """Return whether a branch is silent: never pushed (None) or quiet beyond the limit."""
    flagged = hours_silent is None or hours_silent > limit_hours
    return SilenceFlag(flagged, hours_silent, limit_hours)


def silence_reason(flag: SilenceFlag) -> Reason:
    """Return the sentence behind a silence flag."""
    limit = _num(flag.limit_hours)
    if flag.hours_silent is None:
        return Reason(f"never pushed data (limit {limit} working hours)", "从未上传数据")
    hours = _num(flag.hours_silent)
    return Reason(
        f"no data pushed for {hours} working hours (limit {limit})",
        f"已 {hours} 个工作小时未上传数据（上限 {limit}）",
    )


def timeliness(lags_seconds: Sequence[float], p90_limit_seconds: float) -> Timeliness:
    """Return median and 90th-percentile lag (type 7), flagged when p90 exceeds the limit."""
    if not lags_seconds:
        return Timeliness(0, None, None, p90_limit_seconds, False)
    p90 = quantile(lags_seconds, 0.9)
    median = statistics.median(lags_seconds)
    return Timeliness(len(lags_seconds), median, p90, p90_limit_seconds, p90 > p90_limit_seconds)


def _duration(seconds: float) -> tuple[str, str]:
    if abs(seconds) < 120:
        return f"{_num(seconds)} s", f"{_num(seconds)} 秒"
    if abs(seconds) < 7200:
        return f"{_num(seconds / 60)} min", f"{_num(seconds / 60)} 分钟"
    return f"{_num(seconds / 3600)} h", f"{_num(seconds / 3600)} 小时"


def timeliness_reason(flag: Timeliness) -> Reason:
    """Return the sentence behind a timeliness flag."""
    limit = _duration(flag.limit)
    if flag.p90 is None or flag.median is None:
        return Reason("no events received", "未收到事件")
    p90, median = _duration(flag.p90), _duration(flag.median)
    return Reason(
        f"90% of {flag.count} events arrived within {p90[0]} (limit {limit[0]}); "
        f"median {median[0]}",
        f"{flag.count} 个事件中 90% 在 {p90[1]}内到达（上限 {limit[1]}）；中位数 {median[1]}",
    )
