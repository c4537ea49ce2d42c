"""shared/ and hq_server/metrics/ do no IO: their imports are walked here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "flask",
    "flask_sqlalchemy",
    "sqlalchemy",
    "redis",
    "rq",
    "requests",
    "psycopg",
    "hq_server.extensions",
    "hq_server.models",
    "hq_server.services",
    "os",
    "socket",
    "subprocess",
    "urllib",
}
PURE_DIRS = ["shared", "hq_server/metrics"]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path",
    [p for d in PURE_DIRS for p in sorted((ROOT / d).rglob("*.py"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_pure_modules_import_no_io(path):
    bad = {
        name
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_only_settings_reads_the_environment():
    readers = []
    for package in ("hq_server", "branch_agent", "shared", "config", "migrations"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            if "os.environ" in text or "getenv(" in text:
                readers.append(str(path.relative_to(ROOT)))
    assert readers == ["config/settings.py"]
