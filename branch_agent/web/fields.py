"""Turn what a person typed into event values, and event values back into form text."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext
from flask_babel.speaklater import LazyString

ENVELOPE = ("rep", "deal", "customer", "occurred_at")


@dataclass(frozen=True)
class Field:
    """One input of a form and where its value goes in the event."""

    name: str
    label: LazyString
    widget: str = "text"  # text select checkbox amount percent minutes list datetime date json
    path: str = ""  # rep, deal, customer, occurred_at, data or data.<key>[.<key>]
    options: str = ""  # the lookup a select offers: reps, deals or stages
    required: bool = False
    default: str = ""
    hint: LazyString | None = None


@dataclass
class Entry:
    """What a form says, shaped like the arguments of ``build_event``."""

    type_: str
    rep: str = ""
    data: dict = field(default_factory=dict)
    deal: str | None = None
    customer: str | None = None
    occurred_at: datetime | None = None

    def place(self, path: str, value: Any) -> None:
        """Put ``value`` where ``path`` says, creating nested data as needed."""
        if path in ENVELOPE:
            setattr(self, path, value)
        elif path == "data":
            self.data = value
        else:
            target = self.data
            *parents, last = path.split(".")[1:]
            for key in parents:
                target = target.setdefault(key, {})
            target[last] = value


def parse_value(widget: str, raw: str | bool | None) -> Any:
    """Return the event value for ``raw``, None when empty; raise ValueError if unreadable."""
    if widget == "checkbox":
        return bool(raw)
    text = (raw or "").strip()
    if not text:
        return None
    if widget == "amount":
        return re.sub(r"[\s,，]", "", text)
    if widget == "percent":
        return text.rstrip("%％").strip()
    if widget == "minutes":
        return _seconds(text)
    if widget == "list":
        return [p.strip() for p in re.split(r"[,，、;；\n]", text) if p.strip()] or None
    if widget == "currency":
        return text.upper()
    if widget == "datetime":
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(gettext("Enter a date and time.")) from None
    if widget == "json":
        return _json_object(text)
    return text


def _seconds(text: str) -> int:
    try:
        minutes = Decimal(text.replace(",", "."))
    except InvalidOperation:
        minutes = None
    if minutes is None or not minutes.is_finite():
        raise ValueError(gettext("Enter a number of minutes."))
    return int((minutes * 60).to_integral_value())


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python reads
        value = None
    if not isinstance(value, dict):
        raise ValueError(gettext('Enter a JSON object, e.g. {"reason": "no budget"}.'))
    return value


def format_value(widget: str, value: Any, tz: tzinfo) -> str | bool:
    """Return the form text that shows event value ``value``."""
    if widget == "checkbox":
        return bool(value)
    if value is None:
        return ""
    if widget == "minutes":
        return f"{Decimal(value) / 60:.2f}".rstrip("0").rstrip(".")
    if widget == "list":
        return ", ".join(str(v) for v in value)
    if widget == "datetime":
        try:
            return datetime.fromisoformat(value).astimezone(tz).strftime("%Y-%m-%dT%H:%M")
        except (TypeError, ValueError):
            return str(value)
    if widget == "json":
        return json.dumps(value, ensure_ascii=False, indent=2)
    return str(value)


def value_at(event: dict, path: str) -> Any:
    """Return the value at ``path`` in an event body, None if absent."""
    value: Any = event
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def flatten_errors(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn marshmallow's nested error dict into ``{"data.amount": [messages]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            inner = f"{prefix}.{key}" if prefix else str(key)
            for path, messages in flatten_errors(value, inner).items():
                out.setdefault(path, []).extend(messages)
    elif isinstance(errors, list | tuple) and not all(isinstance(m, str) for m in errors):
        for item in errors:
            for path, messages in flatten_errors(item, prefix).items():
                out.setdefault(path, []).extend(messages)
    elif isinstance(errors, list | tuple):
        out[prefix or "_schema"] = list(errors)
    elif errors is not None:
        out[prefix or "_schema"] = [str(errors)]
    return out


def merge_errors(first: dict, second: dict) -> dict:
    """Merge two marshmallow error dicts, keeping every message."""
    merged = dict(first)
    for key, value in second.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_errors(merged[key], value)
        elif isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = [*merged[key], *value]
        else:
            merged.setdefault(key, value)
    return merged
