"""Performer tiers per KPI: top 25% / middle 50% / bottom 25% by percentile rank.

The percentile rank is the mid-rank one, ``PR = (below + equal / 2) / N``, where ``below``
counts units doing strictly worse and ``equal`` counts units with the same value (itself
included). Units with equal values therefore share a rank and a tier, and a better value
always has a strictly higher rank. A unit is ``top`` when PR > 0.75 and ``bottom`` when
PR < 0.25; both bounds are strict, so reversing the KPI's direction swaps top and bottom
exactly. With distinct values and N ≥ 8 each outer tier holds within half a unit of N / 4.
A large tie can keep its members in ``middle`` (half the units at 0 gives PR = 0.25).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

TOP, MIDDLE, BOTTOM = "top", "middle", "bottom"
MIN_UNITS = 4


def percentile_ranks(
    values: Mapping[str, float | None], higher_is_better: bool = True
) -> dict[str, float]:
    """Return each unit's mid-rank percentile in (0, 1); None values are left out."""
    known = {code: v for code, v in values.items() if v is not None}
    return {
        code: twice / (2 * len(known))
        for code, twice in _twice_ranks(known, higher_is_better).items()
    }


def _twice_ranks(known: Mapping[str, float], higher_is_better: bool) -> dict[str, int]:
    """Return ``2·below + equal`` per unit: the mid-rank numerator, kept whole."""
    sign = 1 if higher_is_better else -1
    counts = Counter(sign * v for v in known.values())
    below, twice = 0, {}
    for value in sorted(counts):
        twice[value] = 2 * below + counts[value]
        below += counts[value]
    return {code: twice[sign * v] for code, v in known.items()}


def performer_tiers(
    values: Mapping[str, float | None],
    higher_is_better: bool = True,
    min_units: int = MIN_UNITS,
) -> dict[str, str]:
    """Return ``top``, ``middle`` or ``bottom`` per unit; None values are left out.

    Groups smaller than ``min_units`` (default 4) put everyone in ``middle``: a quarter of
    fewer than four units is less than one unit.
    """
    known = {code: v for code, v in values.items() if v is not None}
    size = len(known)
    if size < min_units:
        return dict.fromkeys(known, MIDDLE)
    tiers = {}
    for code, twice in _twice_ranks(known, higher_is_better).items():
        # PR = twice / 2N; compared in whole numbers so the bounds are exact.
        if 2 * twice > 3 * size:
            tiers[code] = TOP
        elif 2 * twice < size:
            tiers[code] = BOTTOM
        else:
            tiers[code] = MIDDLE
    return tiers


def tier_stability(previous: Mapping[str, str], current: Mapping[str, str]) -> float | None:
    """Return the share of units in both periods whose tier did not change.

    Units present in only one period are left out; None when no unit is in both.
    """
    common = previous.keys() & current.keys()
    if not common:
        return None
    return sum(previous[code] == current[code] for code in common) / len(common)
