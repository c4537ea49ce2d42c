"""Serialise rows to JSON for ``json_populate_recordset``: one round trip per table."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal


def _default(value):
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(rows: list[dict]) -> str:
    """Return rows as a compact JSON array (UUIDs, decimals, times as text)."""
    return json.dumps(rows, default=_default, separators=(",", ":"))
