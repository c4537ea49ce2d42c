"""Targets HQ sets per unit and period, and how far each unit is toward them."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert

from hq_server.extensions import db
from hq_server.metrics.targets import MONTHS, attainment, phased_target, phases
from hq_server.models import OrgUnit, Target
from hq_server.services.scope import Principal, branch_ids_under, resolve_unit

METRICS = ("won_amount", "deals_won", "visits")


class TargetError(ValueError):
    """The target is not valid."""


def set_target(
    unit_code: str,
    metric: str,
    period_kind: str,
    period_start: date,
    value: float,
    distribution: list[float] | None,
    by: str,
) -> dict:
    """Create or replace a unit's target for a period (caller commits)."""
    if metric not in METRICS:
        raise TargetError(f"metric must be one of {', '.join(METRICS)}")
    if period_kind not in MONTHS:
        raise TargetError(f"period must be one of {', '.join(MONTHS)}")
    if db.session.scalar(select(OrgUnit.id).where(OrgUnit.code == unit_code)) is None:
        raise TargetError(f"no org unit {unit_code!r}")
    start = period_start.replace(day=1)
    try:
        phases(value, period_kind, start, distribution)
    except ValueError as exc:
        raise TargetError(str(exc)) from exc
    values = {
        "unit_code": unit_code,
        "metric": metric,
        "period_kind": period_kind,
        "period_start": start,
        "value": value,
        "distribution": distribution,
        "created_by": by,
    }
    db.session.execute(
        insert(Target)
        .values(**values)
        .on_conflict_do_update(
            index_elements=["unit_code", "metric", "period_kind", "period_start"],
            set_={"value": value, "distribution": distribution, "created_by": by},
        )
    )
    return {**values, "period_start": start.isoformat()}


def _achieved(metric: str, branches: list[int], start: date, end: date) -> float:
    if metric == "visits":
        sql = (
            "SELECT coalesce(sum(value), 0) FROM daily_rollups WHERE branch_id = ANY(:b) "
            "AND day BETWEEN :s AND :e AND metric = 'visits'"
        )
    else:
        measure = "sum(amount)" if metric == "won_amount" else "count(*)"
        sql = (
            f"SELECT coalesce({measure}, 0) FROM deals WHERE branch_id = ANY(:b) "
            "AND status = 'won' AND closed_day BETWEEN :s AND :e"
        )
    return float(db.session.execute(text(sql), {"b": branches, "s": start, "e": end}).scalar())


def report(principal: Principal, unit_code: str, start: date, end: date, today: date) -> dict:
    """Return each target of the unit overlapping [start, end] with attainment and run rate."""
    resolve_unit(principal, unit_code)
    branches = branch_ids_under(principal, unit_code)
    rows = []
    for target in db.session.scalars(
        select(Target)
        .where(Target.unit_code == unit_code)
        .order_by(Target.metric, Target.period_start)
    ):
        monthly = phases(
            float(target.value), target.period_kind, target.period_start, target.distribution
        )
        share = phased_target(monthly, start, end)
        if share == 0:
            continue
        achieved = _achieved(target.metric, branches, start, end)
        rows.append(
            {
                "metric": target.metric,
                "period_kind": target.period_kind,
                "period_start": target.period_start.isoformat(),
                "period_target": float(target.value),
                **attainment(achieved, share, start, end, today),
            }
        )
    return {"unit": unit_code, "from": start.isoformat(), "to": end.isoformat(), "targets": rows}
