"""Read models for dashboards and the read API: served from rollups and projections."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text

from hq_server.extensions import db
from hq_server.metrics.funnel import funnel_steps, win_rate
from hq_server.services.scope import Principal, branch_ids_under, resolve_unit
from shared.stages import FUNNEL

_ACTIVITY = (
    "visits",
    "visits_decision_maker",
    "calls",
    "calls_connected",
    "quotes",
    "deals_opened",
    "deals_won",
    "deals_lost",
    "won_amount",
)


def funnel(principal: Principal, unit_code: str, start: date, end: date) -> dict:
    """Return the cohort funnel, win rate and activity of a unit's subtree for a period."""
    unit = resolve_unit(principal, unit_code)
    branches = branch_ids_under(principal, unit_code)
    conn = db.session.connection()
    reach_cols = ", ".join(
        f"count(*) FILTER (WHERE reached_at ? :s{i}) AS r{i}" for i in range(len(FUNNEL))
    )
    params = {"b": branches, "start": start, "end": end}
    params.update({f"s{i}": s for i, s in enumerate(FUNNEL)})
    cohort = conn.execute(
        text(
            f"SELECT count(*) AS opened, {reach_cols} FROM deals "
            "WHERE branch_id = ANY(:b) AND opened_day BETWEEN :start AND :end"
        ),
        params,
    ).one()
    reached = {s: getattr(cohort, f"r{i}") for i, s in enumerate(FUNNEL)}
    closed = dict(
        conn.execute(
            text(
                "SELECT status, count(*) FROM deals WHERE branch_id = ANY(:b) "
                "AND closed_day BETWEEN :start AND :end AND status IN ('won', 'lost') "
                "GROUP BY status"
            ),
            params,
        ).all()
    )
    activity = dict(
        conn.execute(
            text(
                "SELECT metric, sum(value) FROM daily_rollups WHERE branch_id = ANY(:b) "
                "AND day BETWEEN :start AND :end AND metric = ANY(:m) GROUP BY metric"
            ),
            {**params, "m": list(_ACTIVITY)},
        ).all()
    )
    won, lost = closed.get("won", 0), closed.get("lost", 0)
    return {
        "unit": {"code": unit.code, "name": unit.name, "kind": unit.kind},
        "period": {"from": start, "to": end},
        "cohort": {"deals_opened": cohort.opened, "stages": funnel_steps(list(FUNNEL), reached)},
        "closed": {"won": won, "lost": lost, "win_rate": win_rate(won, lost)},
        "activity": {m: float(activity.get(m, 0)) for m in _ACTIVITY},
    }
