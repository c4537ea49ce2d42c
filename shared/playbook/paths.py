"""Field paths such as ``data.competitor.name``: parse, read from an event, check against schemas.

A path is a tuple of steps: the first is a top-level event field, the rest are
keys (``str``) or list positions (``int``) inside ``data``. Reading a path never
raises: a missing key, a position past the end or a value of the wrong shape
reads as ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from marshmallow import Schema, fields

from shared.events import DATA_SCHEMAS

EVENT_FIELDS = ("id", "type", "occurred_at", "rep", "deal", "customer", "data")

Step = str | int
Path = tuple[Step, ...]
Getter = Callable[[Mapping[str, Any]], Any]

_DOTTED = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*")
_FREE_FORM = (fields.Dict, fields.Mapping, fields.Raw)


def parse_dotted(text: str, roots: Iterable[str] = EVENT_FIELDS) -> Path:
    """Split ``data.competitor.name`` into steps; raise ``ValueError`` if it is not a path."""
    if not isinstance(text, str) or not _DOTTED.fullmatch(text):
        raise ValueError(f"{text!r} is not a field path like data.amount")
    steps = tuple(text.split("."))
    allowed = tuple(roots)
    if steps[0] not in allowed:
        raise ValueError(f"{text!r} must start with one of: {', '.join(allowed)}")
    if steps[0] != "data" and len(steps) > 1:
        raise ValueError(f"{steps[0]} has no parts: only data.… paths do")
    return steps


def path_text(steps: Path) -> str:
    """Write steps back as a path: ``data.products[0]``."""
    out = str(steps[0])
    for step in steps[1:]:
        out += f"[{step}]" if isinstance(step, int) else f".{step}"
    return out


def make_getter(steps: Path) -> Getter:
    """Return a function reading ``steps`` from an event (``None`` when anything is missing)."""
    first = steps[0]
    if len(steps) == 1:
        return lambda event: event.get(first)
    if len(steps) == 2 and isinstance(steps[1], str):
        second = steps[1]

        def get_two(event: Mapping[str, Any]) -> Any:
            try:
                return event.get(first).get(second)
            except AttributeError:  # not a mapping (or missing): the path reads as None
                return None

        return get_two

    rest = steps[1:]

    def get_many(event: Mapping[str, Any]) -> Any:
        value = event.get(first)
        for step in rest:
            value = _step(value, step)
            if value is None:
                return None
        return value

    return get_many


def _step(value: Any, step: Step) -> Any:
    if isinstance(step, int):
        if isinstance(value, list | tuple) and step < len(value):
            return value[step]
        return None
    try:
        return value.get(step)
    except AttributeError:
        return None


def is_present(value: Any) -> bool:
    """Tell whether a value counts as filled in: not None, blank text or an empty list."""
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | tuple | dict):
        return bool(value)
    return True


def schema_error(steps: Path, types: Iterable[str], *, every: bool = False) -> str | None:
    """Return why ``steps`` is not a field of the event ``types`` (of any, or of ``every``)."""
    if steps[0] != "data" or len(steps) == 1:
        return None
    types = tuple(types)
    missing = [t for t in types if not _known(DATA_SCHEMAS[t], steps[1:])]
    name = path_text(steps)
    if every and missing:
        return f"{name} is not a field of {', '.join(missing)}"
    if len(missing) == len(types):
        return f"{name} is not a field of {' or '.join(types) or 'any event type'}"
    return None


def _known(node: Any, steps: Path) -> bool:
    if not steps:
        return True
    step, rest = steps[0], steps[1:]
    if isinstance(node, Schema):
        field = _by_key(node).get(step) if isinstance(step, str) else None
        return field is not None and _known(field, rest)
    if isinstance(node, fields.Nested):
        return _known(node.schema, steps)
    if isinstance(node, fields.List):
        return isinstance(step, int) and _known(node.inner, rest)
    return type(node) in _FREE_FORM


@cache
def _by_key(schema: Schema) -> dict[str, fields.Field]:
    return {f.data_key or name: f for name, f in schema.fields.items()}
