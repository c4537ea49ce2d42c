"""Read and acknowledge lagging flags, and rank units into performer tiers; scoped."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import or_, select

from hq_server.extensions import db
from hq_server.metrics.tiers import performer_tiers
from hq_server.models import LaggingFlag
from hq_server.services.reports import metrics_by
from hq_server.services.scope import OutOfScope, Principal, resolve_unit, unit_paths
from hq_server.services.violations import ACKNOWLEDGERS, Forbidden

CHILD_LEVEL = {"hq": "region", "region": "branch", "branch": "rep"}


def _in(paths: list[str]):
    return or_(*(LaggingFlag.unit_path.startswith(p, autoescape=True) for p in paths))


def flag_dict(flag: LaggingFlag) -> dict:
    return {
        "id": flag.id,
        "unit": flag.unit_code,
        "unit_kind": flag.unit_kind,
        "parent": flag.parent_code,
        "check": flag.check,
        "metric": flag.metric,
        "period": {
            "kind": flag.period_kind,
            "from": flag.period_start.isoformat(),
            "to": flag.period_end.isoformat(),
        },
        "value": flag.value,
        "n": flag.n,
        "peer_value": flag.peer_value,
        "limit": flag.limit,
        "z": flag.z,
        "severity": flag.severity,
        "status": flag.status,
        "reason": flag.reason,
        "details": flag.details,
        "acknowledged_by": flag.acknowledged_by,
        "note": flag.note,
        "resolved_at": flag.resolved_at.isoformat() if flag.resolved_at else None,
    }


def list_flags(
    principal: Principal, unit: str, *, status: str | None, start: date, end: date
) -> list[dict]:
    """Return flags of units under ``unit`` for periods overlapping [start, end]."""
    resolve_unit(principal, unit)
    query = (
        select(LaggingFlag)
        .where(
            _in(unit_paths(unit)),
            _in(unit_paths(principal.scope_code)),
            LaggingFlag.period_end >= start,
            LaggingFlag.period_start <= end,
        )
        .order_by(
            LaggingFlag.period_start.desc(), LaggingFlag.severity.desc(), LaggingFlag.unit_code
        )
    )
    if status:
        query = query.where(LaggingFlag.status == status)
    return [flag_dict(f) for f in db.session.scalars(query)]


def get_flag(principal: Principal, flag_id: int, *, lock: bool = False) -> LaggingFlag:
    """Return one flag if it lies in the caller's scope."""
    flag = db.session.get(LaggingFlag, flag_id, with_for_update=lock)
    scope = unit_paths(principal.scope_code)
    if flag is None or not any(flag.unit_path.startswith(p) for p in scope):
        raise OutOfScope(str(flag_id))
    return flag


def acknowledge(principal: Principal, flag_id: int, note: str, by: str) -> dict:
    """Acknowledge an open flag with a note (caller commits)."""
    if principal.role not in ACKNOWLEDGERS:
        raise Forbidden("only managers acknowledge flags")
    flag = get_flag(principal, flag_id, lock=True)
    if flag.status == "open":
        flag.status = "acknowledged"
        flag.acknowledged_by, flag.acknowledged_at = by, datetime.now(UTC)
    flag.note = note or flag.note
    return flag_dict(flag)


def tiers(principal: Principal, unit: str, start: date, end: date) -> dict:
    """Rank the unit's children (regions, branches or reps) into top / middle / bottom."""
    node = resolve_unit(principal, unit)
    level = CHILD_LEVEL[node.kind]
    rows = metrics_by(principal, unit, start, end, level)["rows"]
    kpis = {
        "win_rate": {r["node"]: r["win_rate"] for r in rows},
        "won_amount": {r["node"]: r["won_amount"] for r in rows},
        "deals_won": {r["node"]: r["won"] for r in rows},
    }
    return {
        "unit": unit,
        "level": level,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "tiers": {kpi: performer_tiers(values) for kpi, values in kpis.items()},
    }
