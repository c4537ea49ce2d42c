"""Publish playbook versions, keep them all, and pick the one in force for an event."""

from __future__ import annotations

import difflib
import logging
from bisect import bisect_right
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from hq_server.extensions import db
from hq_server.models import PlaybookVersion
from hq_server.services.rows import execute_plain

if TYPE_CHECKING:
    from shared.playbook import Playbook

log = logging.getLogger(__name__)

# Compiled once per version per process: versions never change once published.
_COMPILED: dict[int, Playbook] = {}


class PublishError(ValueError):
    """The playbook cannot be published (invalid, or not newer than the current one)."""

    def __init__(self, message: str, errors: list | None = None):
        super().__init__(message)
        self.errors = errors or []


def validate(source: str) -> Playbook:
    """Parse and compile a playbook; raise ``PublishError`` with line-numbered errors."""
    from shared.playbook import PlaybookError, load_playbook

    try:
        return load_playbook(source)
    except PlaybookError as exc:
        raise PublishError(exc.message, exc.errors) from exc


def publish(source: str, by: str) -> PlaybookVersion:
    """Store a new version (caller commits); it must be newer than every stored one."""
    playbook = validate(source)
    current = db.session.scalar(select(func.max(PlaybookVersion.version)))
    if current is not None and playbook.version <= current:
        raise PublishError(f"version {playbook.version} is not newer than the current {current}")
    row = PlaybookVersion(
        version=playbook.version,
        name=playbook.name,
        source=source,
        document=playbook.to_dict(),
        published_by=by,
    )
    db.session.add(row)
    db.session.flush()
    log.info("playbook v%d published by %s", playbook.version, by)
    return row


def latest() -> PlaybookVersion | None:
    """Return the newest published version."""
    return db.session.scalar(select(PlaybookVersion).order_by(PlaybookVersion.version.desc()))


def all_versions() -> list[PlaybookVersion]:
    """Return every published version, newest first (the audit trail)."""
    return list(
        db.session.scalars(select(PlaybookVersion).order_by(PlaybookVersion.version.desc()))
    )


def get(version: int) -> PlaybookVersion | None:
    return db.session.get(PlaybookVersion, version)


def compiled(version: int, document: dict | None = None) -> Playbook:
    """Return the compiled playbook of ``version`` (from the cache after the first time)."""
    from shared.playbook import Playbook

    if version not in _COMPILED:
        if document is None:
            row = get(version)
            if row is None:
                raise LookupError(f"no playbook version {version}")
            document = row.document
        _COMPILED[version] = Playbook.from_dict(document)
    return _COMPILED[version]


def forget_compiled() -> None:
    """Drop compiled versions (only when the playbooks table itself was emptied)."""
    _COMPILED.clear()


class Timeline:
    """Published versions in order, to find the one in force at a moment."""

    def __init__(self, rows: list[tuple[int, datetime]]):
        self.rows = sorted(rows, key=lambda r: r[1])
        self.times = [published for _, published in self.rows]

    @classmethod
    def load(cls, conn) -> Timeline:
        """Read the published versions on ``conn`` (a SQLAlchemy connection); every push
        does, so it is one plain statement on the driver."""
        return cls(execute_plain(conn, "SELECT version, published_at FROM playbooks"))

    def version_at(self, moment: datetime) -> int | None:
        """Return the version in force at ``moment`` (None before the first publication).

        Rules are not retroactive: an entry is judged by the playbook that was in
        force when it happened, whatever version the agent had when it checked.
        """
        i = bisect_right(self.times, moment)
        return self.rows[i - 1][0] if i else None


def diff(old_source: str, new_source: str, old_name: str = "old", new_name: str = "new") -> str:
    """Return a unified diff between two playbook sources."""
    return "".join(
        difflib.unified_diff(
            old_source.splitlines(keepends=True),
            new_source.splitlines(keepends=True),
            fromfile=old_name,
            tofile=new_name,
        )
    )
