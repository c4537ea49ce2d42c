"""Jepsen-style checks over event ids: what the agent queued against what HQ stored."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import text

from branch_agent.outbox import Outbox


@dataclass(frozen=True)
class Verdict:
    """The outcome of comparing one agent's outbox with HQ's events table."""

    queued: int
    stored: int
    lost: int
    duplicated: int
    unexpected: int
    not_synced: int
    agent_checksum: tuple[int, str]
    hq_checksum: tuple[int, str]

    @property
    def problems(self) -> dict[str, object]:
        """Return every failed check (empty when the run was exactly-once)."""
        found: dict[str, object] = {}
        for name in ("lost", "duplicated", "unexpected", "not_synced"):
            if getattr(self, name):
                found[name] = getattr(self, name)
        if self.stored != self.queued:
            found["stored != queued"] = (self.stored, self.queued)
        if self.agent_checksum != self.hq_checksum:
            found["checksum"] = (self.agent_checksum, self.hq_checksum)
        return found


def hq_events(app) -> list[tuple[str, bytes, str]]:
    """Return ``(id, content_hash, branch code)`` of every event HQ stored."""
    from hq_server.extensions import db

    with app.app_context():
        rows = db.session.execute(
            text(
                "SELECT e.id::text, e.content_hash, u.code "
                "FROM events e JOIN org_units u ON u.id = e.branch_id"
            )
        ).all()
        db.session.rollback()
    return [(r[0], bytes(r[1]), r[2]) for r in rows]


def hq_count(app) -> int:
    """Return how many events HQ stored."""
    from hq_server.extensions import db

    with app.app_context():
        count = db.session.execute(text("SELECT count(*) FROM events")).scalar_one()
        db.session.rollback()
    return count


def checksum(pairs: list[tuple[str, bytes]]) -> tuple[int, str]:
    """Return (count, sha256 of sorted id||content_hash), as ``Outbox.checksum`` computes it."""
    digest = hashlib.sha256()
    for event_id, chash in sorted(pairs):
        digest.update(event_id.encode() + chash)
    return len(pairs), digest.hexdigest()


def verify(app, outbox: Outbox, branch: str, recorded: set[str] | None = None) -> Verdict:
    """Compare the outbox with HQ; ``recorded`` is what the test itself queued, if it knows."""
    rows = outbox.conn.execute("SELECT id, state FROM outbox").fetchall()
    queued = {r[0] for r in rows}
    if recorded is not None:
        # The outbox must hold exactly what was recorded before it can stand for the history.
        assert queued == recorded, (len(queued - recorded), len(recorded - queued))
    stored = hq_events(app)
    ours = [(eid, chash) for eid, chash, code in stored if code == branch]
    stored_ids = [eid for eid, _, _ in stored]
    return Verdict(
        queued=len(queued),
        stored=len(stored_ids),
        lost=len(queued - set(stored_ids)),
        duplicated=len(stored_ids) - len(set(stored_ids)),
        unexpected=len(set(stored_ids) - queued) + len(stored) - len(ours),
        not_synced=sum(1 for r in rows if r[1] != "synced"),
        agent_checksum=outbox.checksum(("synced",)),
        hq_checksum=checksum(ours),
    )
