"""Load a playbook from YAML text or a JSON document, with errors that name path and line."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.playbook.build import build_playbook
from shared.playbook.errors import PlaybookError
from shared.playbook.model import Playbook
from shared.playbook.rules import Path, Problems
from shared.playbook.source import Lines, read_yaml


def load_playbook(text: str) -> Playbook:
    """Parse, check and compile playbook YAML; raise ``PlaybookError`` with lines on errors."""
    document, lines = read_yaml(text)
    try:
        return build_playbook(document)
    except Problems as exc:
        raise _refusal(exc.items, document, lines) from None


def playbook_from_dict(document: Mapping[str, Any]) -> Playbook:
    """Check and compile a playbook document (``Playbook.to_dict`` output or parsed YAML)."""
    try:
        return build_playbook(document)
    except Problems as exc:
        raise _refusal(exc.items, document, None) from None


def _refusal(
    items: Iterable[tuple[Path, str]], document: Any, lines: Lines | None
) -> PlaybookError:
    errors = [
        {
            "path": format_path(path, document),
            "line": _line(path, lines) if lines is not None else None,
            "message": message,
        }
        for path, message in items
    ]
    errors.sort(key=lambda e: (e["line"] or 0, e["path"]))
    count = len(errors)
    return PlaybookError(f"the playbook is invalid ({count} error{'s' * (count != 1)})", errors)


def format_path(path: Path, document: Any) -> str:
    """Write a path as ``rules[2].condition``, indexing lists and naming mapping keys."""
    out, node = "", document
    for step in path:
        if isinstance(node, list) and isinstance(step, int):
            out += f"[{step}]"
            node = node[step] if 0 <= step < len(node) else None
        else:
            out += f".{step}" if out else str(step)
            node = node.get(step) if isinstance(node, dict) else None
    return out


def _line(path: Path, lines: Lines) -> int | None:
    """Return the line of ``path``, or of its nearest ancestor present in the file."""
    for end in range(len(path), -1, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return None
