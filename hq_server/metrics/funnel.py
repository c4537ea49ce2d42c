"""Funnel arithmetic: stage-to-stage conversion and win rate."""

from __future__ import annotations


def ratio(num: float, den: float) -> float | None:
    """Return ``num / den``, or None when there is nothing to divide by."""
    return None if not den else num / den


def funnel_steps(stages: list[str], reached: dict[str, int]) -> list[dict]:
    """Return per stage the deals that reached it and the conversion to the next.

    Cohort conversion: ``conv(k -> k+1) = reached(k+1) / reached(k)``, where
    reached counts deals that ever entered the stage, lost ones included.
    """
    steps = []
    for i, stage in enumerate(stages):
        count = reached.get(stage, 0)
        nxt = stages[i + 1] if i + 1 < len(stages) else None
        steps.append(
            {
                "stage": stage,
                "reached": count,
                "next_stage": nxt,
                "conversion_to_next": ratio(reached.get(nxt, 0), count) if nxt else None,
            }
        )
    return steps


def win_rate(won: int, lost: int) -> float | None:
    """Return won / (won + lost) over deals closed in the period."""
    return ratio(won, won + lost)
