"""A compiled playbook: stages, definitions, calendars and rules, as frozen dataclasses.

Conditions keep their source text next to the compiled function and compare by
text, so a playbook equals itself after ``to_dict`` / ``from_dict``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from shared.playbook.calendar import Calendar
from shared.playbook.template import Message
from shared.playbook.timers import sla_status
from shared.stages import Stage

SEVERITIES = ("warn", "block")
APPROVERS = ("branch_manager", "region_manager", "hq_manager", "finance")
EVENT_KINDS = ("requires_prior", "required_fields", "threshold", "approval")
TIMER_KINDS = ("sla", "quota", "stall")
# What a timer rule's message may name, besides an SLA's start event fields.
QUOTA_FACTS = ("rep", "branch", "count", "min", "period_start", "period_end")
STALL_FACTS = ("deal", "customer", "rep", "stage", "idle_days", "days", "last_activity_at")


@dataclass(frozen=True)
class Condition:
    """A compiled condition and its source; call ``test(event)`` for its value."""

    source: str
    test: Callable[[Mapping[str, Any]], Any] = field(compare=False, repr=False)

    def __call__(self, event: Mapping[str, Any]) -> bool:
        return bool(self.test(event))


@dataclass(frozen=True, kw_only=True)
class Rule:
    """What every rule has: an id, a severity and a message in both languages."""

    kind: ClassVar[str] = ""
    id: str
    severity: str
    message: Message

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as the playbook writes it."""
        body = {k: v for k, v in self._body().items() if v is not None}
        return {
            "id": self.id,
            "kind": self.kind,
            **body,
            "severity": self.severity,
            "message": self.message.to_dict(),
        }

    def _body(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, kw_only=True)
class EventRule(Rule):
    """A rule checked on each event of the ``applies_to`` types, as it is recorded."""

    applies_to: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class RequiresPrior(EventRule):
    """The event needs an earlier event of ``prior_type`` on the same deal."""

    kind: ClassVar[str] = "requires_prior"
    prior_type: str
    prior_condition: Condition | None = None
    when: Condition | None = None

    def _body(self) -> dict[str, Any]:
        prior = {"type": self.prior_type}
        if self.prior_condition is not None:
            prior["condition"] = self.prior_condition.source
        return {"applies_to": list(self.applies_to), "prior": prior, "when": _text(self.when)}


@dataclass(frozen=True, kw_only=True)
class RequiredFields(EventRule):
    """The event must fill in every path of ``fields``."""

    kind: ClassVar[str] = "required_fields"
    fields: tuple[str, ...]
    getters: tuple[Callable[[Mapping[str, Any]], Any], ...] = field(compare=False, repr=False)
    when: Condition | None = None

    def _body(self) -> dict[str, Any]:
        return {
            "applies_to": list(self.applies_to),
            "fields": list(self.fields),
            "when": _text(self.when),
        }


@dataclass(frozen=True, kw_only=True)
class Threshold(EventRule):
    """The event breaks the rule when ``condition`` is true."""

    kind: ClassVar[str] = "threshold"
    condition: Condition

    def _body(self) -> dict[str, Any]:
        return {"applies_to": list(self.applies_to), "condition": self.condition.source}


@dataclass(frozen=True, kw_only=True)
class Approval(Threshold):
    """Like a threshold, but the event waits for ``approver`` (``block`` by default)."""

    kind: ClassVar[str] = "approval"
    approver: str

    def _body(self) -> dict[str, Any]:
        return {**super()._body(), "approver": self.approver}


@dataclass(frozen=True, kw_only=True)
class Sla(Rule):
    """A ``start_type`` event must be followed by one of ``stop_types`` on its deal in time.

    The message may name the start event's fields (``{rep}``, ``{data.to_rep}``).
    """

    kind: ClassVar[str] = "sla"
    start_type: str
    start_condition: Condition | None
    stop_types: tuple[str, ...]
    stop_condition: Condition | None
    within: timedelta
    working: bool = True

    def starts_on(self, event: Mapping[str, Any]) -> bool:
        """Tell whether ``event`` starts this SLA's clock."""
        return event.get("type") == self.start_type and _holds(self.start_condition, event)

    def stops_on(self, event: Mapping[str, Any]) -> bool:
        """Tell whether ``event`` (on the same deal, after the start) stops the clock."""
        return event.get("type") in self.stop_types and _holds(self.stop_condition, event)

    def status(
        self,
        start_at: datetime,
        first_response_at: datetime | None,
        now: datetime,
        cal: Calendar,
    ) -> tuple[str, datetime, float | None]:
        """Return ``sla_status`` for this rule (working time on ``cal``, or wall-clock)."""
        return sla_status(
            start_at, first_response_at, now, self.within, cal if self.working else None
        )

    def _body(self) -> dict[str, Any]:
        hours = self.within / timedelta(hours=1)
        return {
            "start": _typed(self.start_type, self.start_condition),
            "stop": {"types": list(self.stop_types), **_when(self.stop_condition)},
            "within": {"working_hours" if self.working else "hours": _number(hours)},
        }


@dataclass(frozen=True, kw_only=True)
class Quota(Rule):
    """Each ``per`` (rep or branch) logs at least ``minimum`` matching events a ``period``.

    The message may name ``QUOTA_FACTS``: ``{rep} logged {count} of {min}``.
    """

    kind: ClassVar[str] = "quota"
    event_type: str
    condition: Condition | None
    per: str
    period: str
    minimum: int

    def counts(self, event: Mapping[str, Any]) -> bool:
        """Tell whether ``event`` counts toward the quota."""
        return event.get("type") == self.event_type and _holds(self.condition, event)

    def _body(self) -> dict[str, Any]:
        return {
            "event": _typed(self.event_type, self.condition),
            "per": self.per,
            "period": self.period,
            "min": self.minimum,
        }


@dataclass(frozen=True, kw_only=True)
class Stall(Rule):
    """An open deal (in ``stages``, or any open stage) idle for ``days`` is stalled.

    The message may name ``STALL_FACTS``: ``no activity for {idle_days} days``.
    """

    kind: ClassVar[str] = "stall"
    days: int
    stages: tuple[str, ...] = ()

    def watches(self, stage: Stage) -> bool:
        """Tell whether deals in ``stage`` are watched by this rule."""
        return not stage.is_closed and (not self.stages or stage.name in self.stages)

    def _body(self) -> dict[str, Any]:
        return {"days": self.days, "stages": list(self.stages) or None}


RULE_TYPES: dict[str, type[Rule]] = {
    cls.kind: cls for cls in (RequiresPrior, RequiredFields, Threshold, Approval, Sla, Quota, Stall)
}


@dataclass(frozen=True)
class Playbook:
    """One compiled playbook version; event rules are indexed by event type at creation."""

    version: int
    name: str
    stages: tuple[Stage, ...]
    definitions: Mapping[str, Condition]
    calendars: Mapping[str, Calendar]
    rules: tuple[Rule, ...]
    _by_type: Mapping[str, tuple[EventRule, ...]] = field(init=False, compare=False, repr=False)
    _prior_types: Mapping[str, tuple[str, ...]] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        by_type: dict[str, list[EventRule]] = {}
        for rule in self.rules:
            if isinstance(rule, EventRule):
                for event_type in dict.fromkeys(rule.applies_to):
                    by_type.setdefault(event_type, []).append(rule)
        object.__setattr__(self, "_by_type", {t: tuple(r) for t, r in by_type.items()})
        prior_types = {
            t: tuple(dict.fromkeys(r.prior_type for r in rules if isinstance(r, RequiresPrior)))
            for t, rules in by_type.items()
        }
        object.__setattr__(self, "_prior_types", prior_types)

    def event_rules(self, event_type: str) -> tuple[EventRule, ...]:
        """Return the rules checked on events of ``event_type``, in playbook order."""
        return self._by_type.get(event_type, ())

    def prior_types(self, event_type: str) -> tuple[str, ...]:
        """Return the event types ``requires_prior`` rules look for before ``event_type``."""
        return self._prior_types.get(event_type, ())

    def rules_of_kind(self, kind: str) -> tuple[Rule, ...]:
        """Return the rules of one kind (``"sla"``, ``"quota"``, ...), in playbook order."""
        return tuple(r for r in self.rules if r.kind == kind)

    def rule(self, rule_id: str) -> Rule | None:
        """Return the rule with ``rule_id``, if there is one."""
        return next((r for r in self.rules if r.id == rule_id), None)

    def stage(self, name: str) -> Stage | None:
        """Return the stage called ``name``, if there is one."""
        return next((s for s in self.stages if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """Return the playbook as a JSON-friendly document (``from_dict`` reads it back)."""
        return {
            "version": self.version,
            "name": self.name,
            "stages": [_stage_dict(s) for s in self.stages],
            "definitions": {name: c.source for name, c in self.definitions.items()},
            "calendars": {code: c.to_dict() for code, c in self.calendars.items()},
            "rules": [r.to_dict() for r in self.rules],
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Playbook:
        """Check and compile a document from ``to_dict`` (or a parsed YAML playbook)."""
        from shared.playbook.parse import playbook_from_dict  # the builder needs this module

        return playbook_from_dict(document)


def _holds(condition: Condition | None, event: Mapping[str, Any]) -> bool:
    return condition is None or bool(condition.test(event))


def _text(condition: Condition | None) -> str | None:
    return None if condition is None else condition.source


def _when(condition: Condition | None) -> dict[str, str]:
    return {} if condition is None else {"condition": condition.source}


def _typed(event_type: str, condition: Condition | None) -> dict[str, str]:
    return {"type": event_type, **_when(condition)}


def _number(value: float) -> int | float:
    return int(value) if value == int(value) else value


def _stage_dict(stage: Stage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": stage.name,
        "order": stage.order,
        "probability": stage.probability,
        "forecast_category": stage.forecast_category,
    }
    if stage.is_won:
        out["won"] = True
    if stage.is_lost:
        out["lost"] = True
    return out
