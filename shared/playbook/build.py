"""Turn a playbook document (parsed YAML or JSON) into a compiled ``Playbook``.

The shape is checked by ``shared.playbook.schema``; here, what it means: the
stage table has unique names and exactly one won and one lost stage, names
used in conditions exist, definitions do not refer to themselves, rule ids are
unique. Every problem is collected (with its path) before anything is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from marshmallow import ValidationError

from shared.events import EVENT_TYPES
from shared.playbook.calendar import Calendar
from shared.playbook.errors import ExpressionError
from shared.playbook.expr import CONSTANT_NAMES, Fn, compile_expression
from shared.playbook.model import Condition, Playbook, Rule
from shared.playbook.ops import FUNCTIONS
from shared.playbook.paths import EVENT_FIELDS, schema_error
from shared.playbook.rules import Path, Problems, RuleCompiler
from shared.playbook.schema import PLAYBOOK_SCHEMA, load_rule
from shared.stages import Stage

RESERVED = frozenset([*EVENT_FIELDS, *CONSTANT_NAMES, *FUNCTIONS])


def build_playbook(document: Any) -> Playbook:
    """Check and compile a document; raise ``Problems`` naming every path that is wrong."""
    if not isinstance(document, Mapping):
        raise Problems([((), "a playbook must be a mapping of version, name, stages, rules…")])
    problems = Problems()
    doc = _load(PLAYBOOK_SCHEMA.load, dict(document), (), problems)
    stages = _stages(doc["stages"], problems) if "stages" in doc else None
    definitions = Definitions(doc.get("definitions", {}), problems)
    for name in definitions:
        try:
            definitions.get(name)
        except ExpressionError:
            pass  # reported at the definition itself
    calendars = _calendars(doc["calendars"], problems) if "calendars" in doc else {}
    # Without valid definitions every name in a rule would look unknown: only check shapes.
    usable = definitions if "definitions" in doc else None
    rules = _rules(doc.get("rules", []), usable, stages, problems)
    if problems.items:
        raise problems
    return Playbook(
        version=doc["version"],
        name=doc["name"],
        stages=tuple(stages or ()),
        definitions={
            n: Condition(s, definitions.compiled[n]) for n, s in definitions.sources.items()
        },
        calendars=calendars,
        rules=tuple(rules),
    )


def _load(
    load: Callable[[Any], dict[str, Any]], data: Any, path: Path, problems: Problems
) -> dict[str, Any]:
    """Return what ``load`` makes of ``data``: all of it, or the keys without errors."""
    try:
        return load(data)
    except ValidationError as exc:
        for item in flatten(exc.messages, path):
            problems.add(*item)
        valid = exc.valid_data if isinstance(exc.valid_data, dict) else {}
        wrong = exc.messages if isinstance(exc.messages, dict) else {}
        return {k: v for k, v in valid.items() if k not in wrong}


def _rules(
    raws: list[Any],
    definitions: Definitions | None,
    stages: list[Stage] | None,
    problems: Problems,
) -> list[Rule]:
    stage_map = None if stages is None else {s.name: s for s in stages}
    compiler = RuleCompiler(definitions or {}, stage_map, problems)
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(raws):
        before = len(problems.items)
        loaded = _load(load_rule, raw, ("rules", i), problems)
        if len(problems.items) > before:
            continue
        if loaded["id"] in seen:
            problems.add(("rules", i, "id"), f"another rule already has the id {loaded['id']!r}")
        seen.add(loaded["id"])
        rule = compiler.compile(loaded, ("rules", i)) if definitions is not None else None
        if rule is not None:
            rules.append(rule)
    return rules


def flatten(messages: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """Yield marshmallow's nested error messages as ``(path, message)`` pairs."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from flatten(value, path if key == "_schema" else (*path, key))
    elif isinstance(messages, list | tuple):
        for message in messages:
            yield from flatten(message, path)
    else:
        yield path, str(messages)


class Definitions(Mapping):
    """Named conditions, compiled on first use so that they may use each other."""

    def __init__(self, sources: Mapping[str, str], problems: Problems) -> None:
        self.sources = dict(sources)
        self.problems = problems
        self.compiled: dict[str, Fn] = {}
        self.failed: set[str] = set()
        self.active: list[str] = []
        for name in self.sources:
            if name in RESERVED:
                problems.add(("definitions", name), f"{name} is a reserved name")
        self.sources = {n: s for n, s in self.sources.items() if n not in RESERVED}

    def get(self, name: str, default: Any = None) -> Any:
        """Return the compiled definition ``name`` (``default`` if there is none)."""
        if name in self.compiled:
            return self.compiled[name]
        if name not in self.sources:
            return default
        if name in self.active:
            loop = " -> ".join([*self.active[self.active.index(name) :], name])
            raise ExpressionError(f"definitions refer to each other in a loop: {loop}")
        if name in self.failed:
            raise ExpressionError(f"uses the definition {name}, which is invalid")
        self.active.append(name)
        try:
            self.compiled[name] = compile_expression(
                self.sources[name],
                definitions=self,
                check_path=lambda steps: schema_error(steps, EVENT_TYPES),
            )
        except ExpressionError as exc:
            self.failed.add(name)
            self.problems.add(("definitions", name), str(exc))
            raise ExpressionError(f"uses the definition {name}, which is invalid") from None
        finally:
            self.active.pop()
        return self.compiled[name]

    def __getitem__(self, name: str) -> Fn:
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self.sources)

    def __len__(self) -> int:
        return len(self.sources)


def _stages(raw: list[dict[str, Any]], problems: Problems) -> list[Stage]:
    stages, names, orders = [], set(), set()
    for i, s in enumerate(raw):
        if s["name"] in names:
            problems.add(("stages", i, "name"), f"another stage is already called {s['name']!r}")
        if s["order"] in orders:
            problems.add(("stages", i, "order"), f"another stage already has order {s['order']}")
        if s["won"] and s["lost"]:
            problems.add(("stages", i), "a stage cannot be both won and lost")
        if s["won"] and s["probability"] != 1:
            problems.add(("stages", i, "probability"), "the won stage has probability 1.0")
        if s["lost"] and s["probability"] != 0:
            problems.add(("stages", i, "probability"), "the lost stage has probability 0.0")
        names.add(s["name"])
        orders.add(s["order"])
        stages.append(
            Stage(
                s["name"],
                s["order"],
                s["probability"],
                s["forecast_category"],
                is_won=s["won"],
                is_lost=s["lost"],
            )
        )
    for flag, label in (("won", "won"), ("lost", "lost")):
        count = sum(1 for s in raw if s[flag])
        if count != 1:
            problems.add(("stages",), f"exactly one stage must be {label} (found {count})")
    return stages


def _calendars(raw: dict[str, dict[str, Any]], problems: Problems) -> dict[str, Calendar]:
    base = _calendar(raw.get("default", {}), Calendar(), ("calendars", "default"), problems)
    calendars = {"default": base}
    for code, fields in raw.items():
        if code != "default":
            calendars[code] = _calendar(fields, base, ("calendars", code), problems)
    return calendars


def _calendar(fields: dict[str, Any], base: Calendar, path: Path, problems: Problems) -> Calendar:
    """Return ``base`` with the fields given overridden (a unit inherits the default)."""
    try:
        return Calendar(
            timezone=fields.get("timezone", base.timezone),
            workdays=fields.get("workdays", base.workdays),
            hours=tuple(fields.get("hours", base.hours)),
            holidays=fields.get("holidays", base.holidays),
            extra_workdays=fields.get("extra_workdays", base.extra_workdays),
        )
    except ValueError as exc:
        problems.add(path, str(exc))
        return base
