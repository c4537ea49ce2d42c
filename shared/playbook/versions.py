"""Which playbook version was in force at a moment.

Rules are not retroactive: HQ judges an event by the version in force when it
occurred, whatever version the agent had cached when it checked the entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol, TypeVar


class Versioned(Protocol):
    @property
    def version(self) -> int: ...


V = TypeVar("V", bound=Versioned)


def version_in_force(published: Iterable[tuple[datetime, V]], when: datetime) -> V | None:
    """Return the playbook in force at ``when`` from ``(published_at, playbook)`` pairs.

    That is the one published last at or before ``when`` (the higher version if
    two were published at the same moment); ``None`` before the first one.
    """
    best: tuple[datetime, int] | None = None
    found = None
    for published_at, playbook in published:
        if published_at <= when:
            key = (published_at, playbook.version)
            if best is None or key > best:
                best, found = key, playbook
    return found
