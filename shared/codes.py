"""Codes both sides derive from names, so a spreadsheet maps the same way at HQ and branch."""

from __future__ import annotations

import re


def slug(text: str) -> str:
    """Turn a name into a code: 'Dustin Brinkmann' -> 'DUSTIN-BRINKMANN'."""
    return re.sub(r"[^A-Z0-9]+", "-", text.strip().upper()).strip("-")[:64]
