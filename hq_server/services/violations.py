"""Read and act on violations and approvals, scoped like every other read."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select, text

from hq_server.extensions import db
from hq_server.models import Approval, Event, OrgUnit, Violation
from hq_server.services.ingest import add_rollups, apply_to_projection, lock_branch
from hq_server.services.rebuild import replayable
from hq_server.services.scope import OutOfScope, Principal, branch_ids_under

ACKNOWLEDGERS = {"branch_manager", "region_manager", "hq_manager", "admin"}
ALWAYS_APPROVE = {"hq_manager", "admin"}


class Forbidden(PermissionError):
    """The caller's role may not do this."""


def _day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    # Periods are whole days; UTC+14 .. UTC-12 covers every branch's local day.
    lo = datetime.combine(start, datetime.min.time(), UTC) - timedelta(hours=14)
    hi = datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=12)
    return lo, hi


def list_violations(
    principal: Principal,
    unit: str,
    *,
    rule: str | None = None,
    status: str | None = None,
    start: date,
    end: date,
    limit: int = 500,
) -> list[dict]:
    """Return violations under ``unit`` in the period, newest first."""
    branches = branch_ids_under(principal, unit)
    lo, hi = _day_bounds(start, end)
    query = (
        select(Violation, OrgUnit.code)
        .join(OrgUnit, OrgUnit.id == Violation.branch_id)
        .where(
            Violation.branch_id.in_(branches),
            Violation.occurred_at >= lo,
            Violation.occurred_at < hi,
        )
        .order_by(Violation.occurred_at.desc(), Violation.id.desc())
        .limit(limit)
    )
    if rule:
        query = query.where(Violation.rule_id == rule)
    if status:
        query = query.where(Violation.status == status)
    return [_violation_dict(v, code) for v, code in db.session.execute(query)]


def _violation_dict(v: Violation, branch_code: str) -> dict:
    return {
        "id": v.id,
        "rule_id": v.rule_id,
        "kind": v.kind,
        "severity": v.severity,
        "playbook_version": v.playbook_version,
        "branch": branch_code,
        "rep_id": v.rep_id,
        "event_id": str(v.event_id) if v.event_id else None,
        "deal_id": str(v.deal_id) if v.deal_id else None,
        "message": v.message,
        "details": v.details,
        "status": v.status,
        "occurred_at": v.occurred_at.isoformat(),
        "acknowledged_by": v.acknowledged_by,
        "resolved_by": v.resolved_by,
        "note": v.note,
    }


def _visible(principal: Principal, branch_id: int) -> None:
    if branch_id not in branch_ids_under(principal, principal.scope_code):
        raise OutOfScope(str(branch_id))


def acknowledge(principal: Principal, violation_id: int, note: str, by: str) -> dict:
    """Mark an open violation acknowledged, with a note (caller commits)."""
    if principal.role not in ACKNOWLEDGERS:
        raise Forbidden("only managers acknowledge violations")
    violation = db.session.get(Violation, violation_id, with_for_update=True)
    if violation is None:
        raise OutOfScope(str(violation_id))
    _visible(principal, violation.branch_id)
    if violation.status == "open":
        violation.status = "acknowledged"
        violation.acknowledged_by, violation.acknowledged_at = by, datetime.now(UTC)
        violation.note = note or violation.note
    code = db.session.get(OrgUnit, violation.branch_id).code
    return _violation_dict(violation, code)


def compliance(principal: Principal, unit: str, start: date, end: date) -> list[dict]:
    """Return per rule: events checked, events in violation, and the compliance rate."""
    branches = branch_ids_under(principal, unit)
    rows = db.session.execute(
        text(
            "SELECT metric, sum(value) FROM daily_rollups WHERE branch_id = ANY(:b) "
            "AND day BETWEEN :s AND :e AND (metric LIKE 'rule_checked:%' "
            "OR metric LIKE 'rule_violated:%') GROUP BY metric"
        ),
        {"b": branches, "s": start, "e": end},
    ).all()
    table: dict[str, dict] = {}
    for metric, value in rows:
        kind, rule_id = metric.split(":", 1)
        table.setdefault(rule_id, {"rule_id": rule_id, "checked": 0, "violated": 0})
        table[rule_id]["checked" if kind == "rule_checked" else "violated"] = int(value)
    table.update(_sla_clocks(branches, start, end))
    for entry in table.values():
        checked = entry["checked"]
        entry["compliance"] = None if not checked else 1 - entry["violated"] / checked
    return sorted(table.values(), key=lambda e: e["rule_id"])


def _sla_clocks(branches: list[int], start: date, end: date) -> dict[str, dict]:
    """Per SLA rule: clocks started in the period (checked) and those that failed."""
    from hq_server.services import playbooks

    current = playbooks.latest()
    if current is None:
        return {}
    out = {}
    for rule in playbooks.compiled(current.version, current.document).rules_of_kind("sla"):
        started, failed = db.session.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM violations v "
                "WHERE v.kind = 'sla' AND v.rule_id = :r AND v.event_id = e.id)) "
                "FROM events e WHERE e.branch_id = ANY(:b) AND e.type = :t "
                "AND e.status = 'counted' AND e.local_day BETWEEN :s AND :e"
            ),
            {"r": rule.id, "b": branches, "t": rule.start_type, "s": start, "e": end},
        ).one()
        if started:
            out[rule.id] = {
                "rule_id": rule.id,
                "checked": started,
                "violated": failed,
                "kind": "sla",
            }
    return out


def list_approvals(principal: Principal, status: str | None = "pending") -> list[dict]:
    """Return approvals in the caller's scope."""
    branches = branch_ids_under(principal, principal.scope_code)
    query = (
        select(Approval, OrgUnit.code, Event.payload)
        .join(OrgUnit, OrgUnit.id == Approval.branch_id)
        .outerjoin(Event, Event.id == Approval.event_id)
        .where(Approval.branch_id.in_(branches))
        .order_by(Approval.id)
    )
    if status:
        query = query.where(Approval.status == status)
    out = []
    for approval, code, payload in db.session.execute(query):
        out.append(
            {
                "id": approval.id,
                "event_id": str(approval.event_id),
                "branch": code,
                "rule_ids": approval.rule_ids,
                "approver_role": approval.approver_role,
                "status": approval.status,
                "decided_by": approval.decided_by,
                "decided_at": approval.decided_at.isoformat() if approval.decided_at else None,
                "note": approval.note,
                "event": payload,
            }
        )
    return out


def decide(principal: Principal, approval_id: int, approve: bool, note: str, by: str) -> dict:
    """Approve (the event starts counting) or refuse a blocked event (caller commits)."""
    approval = db.session.get(Approval, approval_id, with_for_update=True)
    if approval is None:
        raise OutOfScope(str(approval_id))
    _visible(principal, approval.branch_id)
    if principal.role != approval.approver_role and principal.role not in ALWAYS_APPROVE:
        raise Forbidden(f"this approval is for a {approval.approver_role}")
    if approval.status != "pending":
        raise Forbidden(f"already {approval.status}")
    now = datetime.now(UTC)
    approval.status = "approved" if approve else "refused"
    approval.decided_by, approval.decided_at, approval.note = by, now, note
    conn = db.session.connection()
    branch = db.session.get(OrgUnit, approval.branch_id)
    lock_branch(conn, branch.code)  # not while a push or a rebuild of the branch runs
    row = conn.execute(
        text(
            "UPDATE events SET status = :s WHERE id = :i AND status = 'pending' "
            "RETURNING id, rep_id, payload, (SELECT id FROM reps r WHERE r.code = "
            "payload->'data'->>'to_rep') AS to_rep_id"
        ),
        {"s": "counted" if approve else "refused", "i": approval.event_id},
    ).one_or_none()
    if approve and row is not None:
        event = replayable(row)
        add_rollups(conn, branch, [event], apply_to_projection(conn, branch, [event], at=now))
    conn.execute(
        text(
            "UPDATE violations SET status = 'resolved', resolved_by = :by, resolved_at = :now, "
            "note = :note WHERE event_id = :i AND status <> 'resolved' AND severity = 'block'"
        ),
        {"by": by, "now": now, "note": note, "i": approval.event_id},
    )
    return {
        "id": approval.id,
        "status": approval.status,
        "decided_by": by,
        "decided_at": now.isoformat(),
        "note": note,
    }
