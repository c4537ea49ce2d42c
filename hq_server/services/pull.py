"""What a branch agent pulls: its branch, reps, stage table, playbook, targets, assigned leads."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, text

from hq_server.extensions import db
from hq_server.models import Approval, OrgUnit, Rep
from hq_server.services import playbooks
from shared.stages import DEFAULT_STAGES

MAX_LEADS = 1000


def pull_state(
    branch: OrgUnit,
    cursor: datetime | None,
    playbook_version: int | None = None,
    now: datetime | None = None,
) -> dict:
    """Return the branch's reference data, a newer playbook, and what changed since ``cursor``."""
    now = now or datetime.now(UTC)
    current = playbooks.latest()
    newer = current is not None and (playbook_version is None or current.version > playbook_version)
    reps = db.session.scalars(
        select(Rep).where(Rep.branch_id == branch.id, Rep.active.is_(True)).order_by(Rep.code)
    )
    leads = db.session.execute(
        text(
            "SELECT d.id, d.customer, d.name, r.code AS rep, d.last_activity_at "
            "FROM deals d LEFT JOIN reps r ON r.id = d.rep_id "
            "WHERE d.branch_id IN (SELECT id FROM org_units WHERE code = :code) "
            "AND d.status = 'open' AND d.stage = 'lead' "
            "AND (CAST(:since AS timestamptz) IS NULL OR d.last_activity_at > :since) "
            "ORDER BY d.last_activity_at LIMIT :n"
        ),
        {"code": branch.code, "since": cursor, "n": MAX_LEADS},
    ).mappings()
    return {
        "cursor": now.isoformat(),
        "server_time": now.isoformat(),
        "branch": {"code": branch.code, "name": branch.name, "timezone": branch.timezone},
        "reps": [{"code": r.code, "name": r.name} for r in reps],
        "stages": [
            {
                "name": s.name,
                "order": s.order,
                "probability": s.probability,
                "forecast_category": s.forecast_category,
                "is_won": s.is_won,
                "is_lost": s.is_lost,
            }
            for s in DEFAULT_STAGES
        ],
        "playbook": current.document if newer else None,
        "playbook_version": current.version if current else None,
        "decisions": _decisions(branch, cursor),
        "targets": [],
        "leads": [
            {
                "deal": str(lead["id"]),
                "customer": lead["customer"],
                "name": lead["name"],
                "rep": lead["rep"],
                "last_activity_at": lead["last_activity_at"].isoformat(),
            }
            for lead in leads
        ],
    }


def _decisions(branch: OrgUnit, since: datetime | None) -> list[dict]:
    """Return approval decisions on the branch's entries made since ``since``."""
    query = (
        select(Approval)
        .join(OrgUnit, OrgUnit.id == Approval.branch_id)
        .where(OrgUnit.code == branch.code, Approval.decided_at.is_not(None))
        .order_by(Approval.decided_at)
    )
    if since is not None:
        query = query.where(Approval.decided_at > since)
    return [
        {
            "event_id": str(a.event_id),
            "status": a.status,
            "decided_by": a.decided_by,
            "decided_at": a.decided_at.isoformat(),
            "note": a.note,
            "rules": a.rule_ids,
        }
        for a in db.session.scalars(query)
    ]
