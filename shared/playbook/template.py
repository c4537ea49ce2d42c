"""Rule messages with placeholders: ``"discount {data.discount_pct}% needs approval"``.

A placeholder is a field path in braces and nothing else: no format specs, no
attribute or index tricks, so a message cannot reach past the values it names.
``{{`` and ``}}`` write literal braces. A missing value renders as "".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from shared.playbook.paths import Getter, Path, make_getter, parse_dotted

LANGUAGES = ("zh", "en")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True)
class Template:
    """One message text, split once into literal text and field getters."""

    source: str
    parts: tuple[str | Getter, ...] = field(compare=False, repr=False)

    def render(self, context: Mapping[str, Any]) -> str:
        """Fill the placeholders from ``context`` (an event, or a timer's facts)."""
        return "".join(p if isinstance(p, str) else _text(p(context)) for p in self.parts)


@dataclass(frozen=True)
class Message:
    """A rule's message in Chinese and English."""

    zh: Template
    en: Template

    def render(self, context: Mapping[str, Any]) -> dict[str, str]:
        """Return ``{"zh": ..., "en": ...}`` with the placeholders filled."""
        return {"zh": self.zh.render(context), "en": self.en.render(context)}

    def to_dict(self) -> dict[str, str]:
        """Return the message texts as written."""
        return {"zh": self.zh.source, "en": self.en.source}


def compile_template(
    source: str,
    roots: Iterable[str],
    check_path: Callable[[Path], str | None] | None = None,
) -> Template:
    """Split ``source`` into text and placeholders; raise ``ValueError`` on a bad one."""
    parts: list[str | Getter] = []
    position = 0
    for match in _TOKEN.finditer(source):
        _append(parts, source[position : match.start()])
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            _append(parts, token[0])
        elif match.group(1) is None:
            raise ValueError(f"unmatched {token!r} (write {token * 2} for a literal brace)")
        else:
            parts.append(make_getter(_placeholder(match.group(1), roots, check_path)))
    _append(parts, source[position:])
    return Template(source, tuple(parts))


def _placeholder(
    inner: str, roots: Iterable[str], check_path: Callable[[Path], str | None] | None
) -> Path:
    roots = tuple(roots)
    try:
        steps = parse_dotted(inner.strip(), roots)
    except ValueError as exc:
        raise ValueError(f"placeholder {{{inner}}}: {exc}") from None
    problem = check_path(steps) if check_path else None
    if problem:
        raise ValueError(f"placeholder {{{inner}}}: {problem}")
    return steps


def _append(parts: list[str | Getter], text: str) -> None:
    if not text:
        return
    if parts and isinstance(parts[-1], str):
        parts[-1] += text
    else:
        parts.append(text)


def _text(value: Any) -> str:
    if value is None or isinstance(value, dict | list | tuple):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)
