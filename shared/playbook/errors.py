"""The errors the playbook engine raises."""

from __future__ import annotations


class ExpressionError(ValueError):
    """A condition does not compile: bad syntax or a form outside the whitelist."""


class PlaybookError(ValueError):
    """A playbook is refused; ``errors`` names each problem's path and line.

    Each error is a dict ``{"path": "rules[2].condition", "line": 41, "message": "..."}``;
    ``line`` is ``None`` when the playbook came as a dict rather than YAML text.
    """

    def __init__(self, message: str, errors: list[dict] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []

    def __str__(self) -> str:
        lines = [self.message]
        for error in self.errors:
            where = f"line {error['line']}: " if error.get("line") else ""
            path = f"{error['path']}: " if error.get("path") else ""
            lines.append(f"  {where}{path}{error['message']}")
        return "\n".join(lines)
