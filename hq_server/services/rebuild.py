"""Recompute the deal projection and the rollups from the event log (the repair path)."""

from __future__ import annotations

import logging

from sqlalchemy import select, text

from hq_server.extensions import db
from hq_server.models import OrgUnit
from hq_server.services.ingest import add_rollups, add_to_units, apply_to_projection
from hq_server.services.scope import units_on_path
from shared.events import load_event

log = logging.getLogger(__name__)
CHUNK = 5000
_UNIT_REMOVAL = (
    "SELECT CAST(a AS integer), r.day, r.metric, r.branch_id % :stripes, -sum(r.value) "
    "FROM daily_rollups r JOIN org_units b ON b.id = r.branch_id "
    f"{units_on_path('b')} "
    "WHERE r.branch_id = :b AND r.metric NOT LIKE 'rule\\_%' GROUP BY 1, 2, 3, 4"
)


def rebuild_branch(code: str) -> int:
    """Rebuild every row version of branch ``code``; return the events replayed (caller commits)."""
    conn = db.session.connection()
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"branch:{code}"})
    rows = list(
        db.session.scalars(select(OrgUnit).where(OrgUnit.code == code, OrgUnit.kind == "branch"))
    )
    replayed = 0
    for branch in rows:
        # Compliance counts (rule_*) come from the judgement at ingest, not from replay.
        # Take the branch's replayable totals out of its units, then out of its rows.
        add_to_units(conn, _UNIT_REMOVAL, {"b": branch.id})
        for table in ("daily_rollups", "weekly_rollups"):
            conn.execute(
                text(f"DELETE FROM {table} WHERE branch_id = :b AND metric NOT LIKE 'rule\\_%'"),
                {"b": branch.id},
            )
        conn.execute(text("DELETE FROM deals WHERE branch_id = :b"), {"b": branch.id})
        last_id = None
        while True:
            batch = conn.execute(
                text(
                    "SELECT id, rep_id, payload, (SELECT id FROM reps r WHERE r.code = "
                    "payload->'data'->>'to_rep') AS to_rep_id FROM events WHERE branch_id = :b "
                    "AND status = 'counted' "
                    "AND (CAST(:last AS uuid) IS NULL OR id > :last) ORDER BY id LIMIT :n"
                ),
                {"b": branch.id, "last": last_id, "n": CHUNK},
            ).all()
            if not batch:
                break
            events = [replayable(row) for row in batch]
            add_rollups(conn, branch, events, apply_to_projection(conn, branch, events))
            replayed += len(events)
            last_id = batch[-1].id
    log.info("rebuilt branch %s from %d events", code, replayed)
    return replayed


def replayable(row) -> dict:
    event, errors = load_event(row.payload)
    if errors:  # stored events passed this check once; a failure here is a bug
        raise ValueError(f"stored event {row.id} no longer loads: {errors}")
    event["rep_id"] = row.rep_id
    if event["type"] == "lead.assigned":
        event["to_rep_id"] = row.to_rep_id
    return event


def rebuild_all() -> int:
    """Rebuild every branch, one transaction each; return the events replayed."""
    codes = db.session.scalars(
        select(OrgUnit.code).where(OrgUnit.kind == "branch").distinct()
    ).all()
    total = 0
    for code in codes:
        total += rebuild_branch(code)
        db.session.commit()
    return total
