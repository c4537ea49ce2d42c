"""The default stage table: order, probability and forecast category per stage.

The playbook will publish its own table; until then both sides use this one.
Stages follow the funnel HQ watches: lead -> visit (decision maker met) ->
quote -> won; lost is an exit from any stage.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One row of the stage table."""

    name: str
    order: int
    probability: float
    forecast_category: str
    is_won: bool = False
    is_lost: bool = False

    @property
    def is_closed(self) -> bool:
        return self.is_won or self.is_lost


DEFAULT_STAGES: tuple[Stage, ...] = (
    Stage("lead", 1, 0.10, "pipeline"),
    Stage("visit", 2, 0.30, "pipeline"),
    Stage("quote", 3, 0.60, "best_case"),
    Stage("won", 4, 1.00, "closed", is_won=True),
    Stage("lost", 0, 0.00, "omitted", is_lost=True),
)

STAGES_BY_NAME: dict[str, Stage] = {s.name: s for s in DEFAULT_STAGES}

# The funnel: open stages in order, then won. Lost is not a funnel step.
FUNNEL: tuple[str, ...] = tuple(
    s.name for s in sorted(DEFAULT_STAGES, key=lambda s: s.order) if not s.is_lost
)

FORECAST_CATEGORIES = ("pipeline", "best_case", "commit", "closed", "omitted")
