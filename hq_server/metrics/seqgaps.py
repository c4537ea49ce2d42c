"""Track which of an agent's sequence numbers HQ has not seen."""

from __future__ import annotations

from collections.abc import Iterable


def update_gaps(
    max_seq: int, gaps: list[tuple[int, int]], seqs: Iterable[int]
) -> tuple[int, list[tuple[int, int]]]:
    """Return the new highest seq and the missing ranges after ``seqs`` arrived.

    ``gaps`` are inclusive ``(first, last)`` ranges below ``max_seq``. A seq
    above the maximum opens a gap for anything skipped; a seq inside a gap
    (a late arrival) splits or shrinks it.
    """
    ranges = list(gaps)
    for seq in sorted(set(seqs)):
        if seq > max_seq:
            if seq > max_seq + 1:
                ranges.append((max_seq + 1, seq - 1))
            max_seq = seq
            continue
        for i, (first, last) in enumerate(ranges):
            if first <= seq <= last:
                pieces = [(first, seq - 1), (seq + 1, last)]
                ranges[i : i + 1] = [(a, b) for a, b in pieces if a <= b]
                break
    return max_seq, sorted(ranges)


def missing_count(gaps: list[tuple[int, int]]) -> int:
    """Return how many seq numbers the gaps hold."""
    return sum(last - first + 1 for first, last in gaps)
