"""Compile one validated rule into its model object, checking what its names refer to."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from shared.playbook.errors import ExpressionError
from shared.playbook.expr import Fn, compile_expression
from shared.playbook.model import (
    QUOTA_FACTS,
    STALL_FACTS,
    Approval,
    Condition,
    Quota,
    RequiredFields,
    RequiresPrior,
    Rule,
    Sla,
    Stall,
    Threshold,
)
from shared.playbook.paths import EVENT_FIELDS, make_getter, parse_dotted, schema_error
from shared.playbook.template import LANGUAGES, Message, compile_template
from shared.stages import Stage

Path = tuple[Any, ...]
REQUIRABLE = ("data", "customer", "deal")


class Problems(Exception):
    """Everything wrong with a document, as ``(path, message)`` pairs."""

    def __init__(self, items: Iterable[tuple[Path, str]] = ()) -> None:
        super().__init__("the playbook is invalid")
        self.items = list(items)

    def add(self, path: Path, message: str) -> None:
        self.items.append((tuple(path), message))


class RuleCompiler:
    """Compile rules against a playbook's definitions and stage table."""

    def __init__(
        self,
        definitions: Mapping[str, Fn],
        stages: Mapping[str, Stage] | None,
        problems: Problems,
    ) -> None:
        """Prepare to compile; ``stages`` is ``None`` when the stage table itself is wrong."""
        self.definitions = definitions
        self.stages = stages
        self.problems = problems

    def compile(self, raw: dict[str, Any], path: Path) -> Rule | None:
        """Return the rule, or ``None`` after adding its problems."""
        before = len(self.problems.items)
        rule = getattr(self, f"_{raw['kind']}")(raw, path)
        return rule if len(self.problems.items) == before else None

    def condition(self, source: str | None, path: Path, types: Iterable[str]) -> Condition | None:
        """Compile a condition over events of ``types`` (``None`` stays ``None``)."""
        if source is None:
            return None
        types = tuple(types)
        try:
            test = compile_expression(
                source,
                definitions=self.definitions,
                check_path=lambda steps: schema_error(steps, types),
            )
        except ExpressionError as exc:
            self.problems.add(path, str(exc))
            return None
        return Condition(source, test)

    def message(
        self, raw: dict[str, Any], path: Path, roots: Iterable[str], types: Iterable[str] = ()
    ) -> Message | None:
        """Compile both languages of the rule's message (placeholders checked on ``types``)."""
        types, roots = tuple(types), tuple(roots)
        texts = {}
        for language in LANGUAGES:
            try:
                texts[language] = compile_template(
                    raw["message"][language], roots, lambda steps: schema_error(steps, types)
                )
            except ValueError as exc:
                self.problems.add((*path, "message", language), str(exc))
        return Message(**texts) if len(texts) == len(LANGUAGES) else None

    def _common(self, raw: dict[str, Any], message: Message | None) -> dict:
        return {"id": raw["id"], "severity": raw["severity"], "message": message}

    def _event_common(self, raw: dict[str, Any], path: Path) -> dict:
        types = raw["applies_to"]
        message = self.message(raw, path, EVENT_FIELDS, types)
        return {**self._common(raw, message), "applies_to": tuple(types)}

    def _requires_prior(self, raw: dict[str, Any], path: Path) -> Rule:
        prior = raw["prior"]
        return RequiresPrior(
            **self._event_common(raw, path),
            prior_type=prior["type"],
            prior_condition=self.condition(
                prior.get("condition"), (*path, "prior", "condition"), [prior["type"]]
            ),
            when=self.condition(raw.get("when"), (*path, "when"), raw["applies_to"]),
        )

    def _required_fields(self, raw: dict[str, Any], path: Path) -> Rule:
        getters = []
        for i, text in enumerate(raw["paths"]):
            try:
                steps = parse_dotted(text, REQUIRABLE)
            except ValueError as exc:
                self.problems.add((*path, "fields", i), str(exc))
                continue
            problem = schema_error(steps, raw["applies_to"], every=True)
            if problem:
                self.problems.add((*path, "fields", i), problem)
            getters.append(make_getter(steps))
        return RequiredFields(
            **self._event_common(raw, path),
            fields=tuple(raw["paths"]),
            getters=tuple(getters),
            when=self.condition(raw.get("when"), (*path, "when"), raw["applies_to"]),
        )

    def _threshold(self, raw: dict[str, Any], path: Path) -> Rule:
        return Threshold(
            **self._event_common(raw, path),
            condition=self.condition(raw["condition"], (*path, "condition"), raw["applies_to"]),
        )

    def _approval(self, raw: dict[str, Any], path: Path) -> Rule:
        return Approval(
            **self._event_common(raw, path),
            condition=self.condition(raw["condition"], (*path, "condition"), raw["applies_to"]),
            approver=raw["approver"],
        )

    def _sla(self, raw: dict[str, Any], path: Path) -> Rule:
        start, stop, within = raw["start"], raw["stop"], raw["within"]
        if start["type"] in stop["types"]:
            self.problems.add((*path, "stop", "types"), "the start type cannot also stop the clock")
        message = self.message(raw, path, EVENT_FIELDS, [start["type"]])
        working = "working_hours" in within
        return Sla(
            **self._common(raw, message),
            start_type=start["type"],
            start_condition=self.condition(
                start.get("condition"), (*path, "start", "condition"), [start["type"]]
            ),
            stop_types=tuple(stop["types"]),
            stop_condition=self.condition(
                stop.get("condition"), (*path, "stop", "condition"), stop["types"]
            ),
            within=timedelta(hours=within["working_hours" if working else "hours"]),
            working=working,
        )

    def _quota(self, raw: dict[str, Any], path: Path) -> Rule:
        event = raw["event"]
        return Quota(
            **self._common(raw, self.message(raw, path, QUOTA_FACTS)),
            event_type=event["type"],
            condition=self.condition(
                event.get("condition"), (*path, "event", "condition"), [event["type"]]
            ),
            per=raw["per"],
            period=raw["period"],
            minimum=raw["minimum"],
        )

    def _stall(self, raw: dict[str, Any], path: Path) -> Rule:
        stages = raw.get("stages", [])
        for i, name in enumerate(stages if self.stages is not None else ()):
            stage = self.stages.get(name)
            if stage is None:
                self.problems.add((*path, "stages", i), f"no stage called {name!r}")
            elif stage.is_closed:
                self.problems.add(
                    (*path, "stages", i), f"{name} is closed: deals there never stall"
                )
        return Stall(
            **self._common(raw, self.message(raw, path, STALL_FACTS)),
            days=raw["days"],
            stages=tuple(stages),
        )
