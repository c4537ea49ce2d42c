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


_NODE_KEYS = {"rep": "p.code", "branch": "b.code", "region": "r.code"}


def metrics_by(principal: Principal, unit_code: str, start: date, end: date, by: str) -> dict:
    """Return deal figures per region, branch or rep under a unit for a period.

    Open deals are counted by their current stage; won and lost deals by the
    day they closed; won revenue is the sum of won amounts (in deal currency).
    """
    unit = resolve_unit(principal, unit_code)
    branches = branch_ids_under(principal, unit_code)
    open_stages = [s for s in FUNNEL if s != "won"]
    stage_cols = ", ".join(
        f"count(*) FILTER (WHERE d.status = 'open' AND d.stage = :st{i}) AS open_{i}"
        for i in range(len(open_stages))
    )
    params = {"b": branches, "start": start, "end": end}
    params.update({f"st{i}": s for i, s in enumerate(open_stages)})
    closed = "d.closed_day BETWEEN :start AND :end"
    sql = (
        f"SELECT {_NODE_KEYS[by]} AS node, "
        "count(*) FILTER (WHERE d.opened_day BETWEEN :start AND :end) AS opened, "
        f"count(*) FILTER (WHERE d.status = 'won' AND {closed}) AS won, "
        f"count(*) FILTER (WHERE d.status = 'lost' AND {closed}) AS lost, "
        f"coalesce(sum(d.amount) FILTER (WHERE d.status = 'won' AND {closed}), 0) "
        f"AS won_amount, {stage_cols} "
        "FROM deals d JOIN org_units b ON b.id = d.branch_id "
        "LEFT JOIN org_units r ON r.id = b.parent_id LEFT JOIN reps p ON p.id = d.rep_id "
        "WHERE d.branch_id = ANY(:b) GROUP BY 1 ORDER BY 1"
    )
    rows = db.session.execute(text(sql), params).mappings().all()
    return {
        "unit": {"code": unit.code, "name": unit.name, "kind": unit.kind},
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "by": by,
        "rows": [
            {
                "node": row["node"],
                "deals_opened": row["opened"],
                "open_by_stage": {s: row[f"open_{i}"] for i, s in enumerate(open_stages)},
                "won": row["won"],
                "lost": row["lost"],
                "win_rate": win_rate(row["won"], row["lost"]),
                "won_amount": float(row["won_amount"]),
            }
            for row in rows
        ],
    }
