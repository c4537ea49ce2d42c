"""Serialise rows to JSON for ``json_populate_recordset``: one round trip per table."""

from __future__ import annotations

from decimal import Decimal

import orjson


def _default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(rows: list[dict]) -> str:
    """Return rows as a compact JSON array (UUIDs, decimals, times as text)."""
    return orjson.dumps(rows, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()
