"""What one projected deal adds to the daily rollups, so deal reports never scan deals.

A deal's contribution is a function of its projected state alone: the day it opened
(its cohort: the stages it reached and how long each step took), the days it entered
each stage (flow), the day it closed (won, lost, won amount, cycle length) and, while
it is open, its current stage. Ingest adds ``contributions(new) - contributions(old)``
for every deal a push changes, and a rebuild adds them from scratch, so the rollups
equal a rebuild whatever the order events arrive in.

Open-deal counters describe the present, not a day: they are kept on ``CURRENT_DAY``.
Medians come from histograms with the fixed edges below (days), interpolated linearly
within the bucket that holds the middle value.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, datetime
from decimal import Decimal

from hq_server.metrics.projection import local_day
from shared.stages import FUNNEL

CURRENT_DAY = date(1970, 1, 1)

# Histogram bucket lower edges in days; the last bucket is open-ended.
EDGES: tuple[float, ...] = (
    0, 1 / 24, 0.25, 0.5, 1, 2, 3, 5, 7, 10, 14, 21, 30, 45, 60, 90, 120, 180, 270, 365,
)  # fmt: skip

PREFIX = "deal_"
COHORT = "deal_cohort"
WON, LOST, WON_AMOUNT, CYCLE = "deal_won", "deal_lost", "deal_won_amount", "deal_cycle_s"
OPEN_QUALIFIED = "deal_open_qualified"


def reached(stage: str) -> str:
    return f"deal_reached:{stage}"


def entered(stage: str) -> str:
    return f"deal_entered:{stage}"


def step_seconds(i: int) -> str:
    """Total seconds from reaching ``FUNNEL[i]`` to reaching the next stage (cohort)."""
    return f"deal_step_s:{i}"


def step_bucket(i: int, bucket: int) -> str:
    return f"deal_step_h:{i}:{bucket}"


def cycle_bucket(bucket: int) -> str:
    return f"deal_cycle_h:{bucket}"


def open_at(stage: str) -> str:
    return f"deal_open:{stage}"


def bucket_of(days: float) -> int:
    """Return the index of the histogram bucket holding ``days`` (below 0: the first)."""
    return max(bisect_right(EDGES, days) - 1, 0)


def median(buckets: dict[int, float]) -> float | None:
    """Estimate the median from bucket counts (linear within the middle bucket)."""
    total = sum(buckets.values())
    if total <= 0:
        return None
    half, seen = total / 2, 0.0
    for i in sorted(buckets):
        count = buckets[i]
        if count <= 0:
            continue
        if seen + count >= half:
            low = EDGES[i]
            high = EDGES[i + 1] if i + 1 < len(EDGES) else low * 1.5
            return low + (high - low) * (half - seen) / count
        seen += count
    return None  # pragma: no cover - counts summing to total always reach half


def _seconds(a: datetime, b: datetime) -> Decimal:
    return Decimal(str(round((b - a).total_seconds(), 2)))


def _moment(value) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


# The metric names of each stage and step, made once (a push computes a few hundred deals).
_STAGE_METRICS = tuple((stage, reached(stage), entered(stage)) for stage in FUNNEL)
_STEPS = tuple(
    (FUNNEL[i], FUNNEL[i + 1], step_seconds(i), tuple(step_bucket(i, b) for b in range(len(EDGES))))
    for i in range(len(FUNNEL) - 1)
)
_CYCLE_BUCKETS = tuple(cycle_bucket(b) for b in range(len(EDGES)))
_ONE = Decimal(1)
_DAY_SECONDS = 86400


def contributions(state: dict, tz) -> dict[tuple, Decimal]:
    """Return ``{(rep_id, day, metric): value}`` for one projected deal.

    A deal counts once its opening has arrived (it then has an owner and an open day);
    before that it contributes nothing. Each metric occurs at most once per deal, so
    every key is set once.
    """
    rep, opened_at = state["rep_id"], state["opened_at"]
    if rep is None or opened_at is None:
        return {}
    one = _ONE
    opened_day = local_day(opened_at, tz)
    reached_at = state["reached_at"] or {}
    times = {s: _moment(reached_at[s]) for s in FUNNEL if s in reached_at}
    out: dict[tuple, Decimal] = {(rep, opened_day, COHORT): one}
    for stage, reached_metric, entered_metric in _STAGE_METRICS:
        if stage in times:
            out[(rep, opened_day, reached_metric)] = one
            out[(rep, local_day(times[stage], tz), entered_metric)] = one
    for stage, nxt, seconds_metric, bucket_metrics in _STEPS:
        if stage in times and nxt in times:
            seconds = _seconds(times[stage], times[nxt])
            out[(rep, opened_day, seconds_metric)] = seconds
            out[(rep, opened_day, bucket_metrics[bucket_of(float(seconds) / _DAY_SECONDS)])] = one
    status, closed_at = state["status"], state["closed_at"]
    if status in ("won", "lost") and closed_at is not None:
        closed_day = local_day(closed_at, tz)
        if status == "lost":
            out[(rep, closed_day, LOST)] = one
        else:
            out[(rep, closed_day, WON)] = one
            if state["amount"] is not None:
                out[(rep, closed_day, WON_AMOUNT)] = Decimal(state["amount"])
            seconds = _seconds(opened_at, closed_at)
            out[(rep, closed_day, CYCLE)] = seconds
            bucket = _CYCLE_BUCKETS[bucket_of(float(seconds) / _DAY_SECONDS)]
            out[(rep, closed_day, bucket)] = one
    elif status == "open" and state["stage"] is not None:
        out[(rep, CURRENT_DAY, open_at(state["stage"]))] = one
        if "visit" in times:
            out[(rep, CURRENT_DAY, OPEN_QUALIFIED)] = one
    return {key: value for key, value in out.items() if value}  # a zero adds no row


def change(before: dict | None, after: dict) -> dict[tuple, Decimal]:
    """Return ``after - before`` without the keys that cancel."""
    out = dict(after)
    for key, value in (before or {}).items():
        out[key] = out.get(key, Decimal(0)) - value
    return {k: v for k, v in out.items() if v != 0}
