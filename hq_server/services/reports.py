"""Read models for dashboards and the read API: served from rollups and projections."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import text

from hq_server.extensions import db
from hq_server.metrics import kpis
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
    steps = funnel_steps(list(FUNNEL), reached)
    for step, days in zip(steps, _days_to_next(conn, params), strict=True):
        step["median_days_to_next"] = days
    return {
        "unit": {"code": unit.code, "name": unit.name, "kind": unit.kind},
        "period": {"from": start, "to": end},
        "cohort": {
            "label": "cohort: deals opened in the period, stages they ever reached",
            "deals_opened": cohort.opened,
            "stages": steps,
        },
        "flow": {
            "label": "period (flow): deals entering each stage in the period; mixes cohorts",
            "stages": funnel_steps(list(FUNNEL), _entered(conn, params, unit.timezone)),
        },
        "closed": {"won": won, "lost": lost, "win_rate": win_rate(won, lost)},
        "activity": {m: float(activity.get(m, 0)) for m in _ACTIVITY},
    }


def _days_to_next(conn, params: dict) -> list[float | None]:
    """Median days from reaching each stage to reaching the next (time in stage), per cohort."""
    cols = ", ".join(
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM "
        f"(reached_at->>:s{i + 1})::timestamptz - (reached_at->>:s{i})::timestamptz) / 86400)"
        f" FILTER (WHERE reached_at ? :s{i + 1})"
        for i in range(len(FUNNEL) - 1)
    )
    row = conn.execute(
        text(
            f"SELECT {cols} FROM deals WHERE branch_id = ANY(:b) "
            "AND opened_day BETWEEN :start AND :end"
        ),
        params,
    ).one()
    return [None if v is None else round(float(v), 2) for v in row] + [None]


def _entered(conn, params: dict, tz: str) -> dict[str, int]:
    """Count deals that entered each stage during the period (local days of the unit)."""
    cols = ", ".join(
        f"count(*) FILTER (WHERE ((reached_at->>:s{i})::timestamptz AT TIME ZONE :tz)::date "
        f"BETWEEN :start AND :end) AS e{i}"
        for i in range(len(FUNNEL))
    )
    row = conn.execute(
        text(
            f"SELECT {cols} FROM deals WHERE branch_id = ANY(:b) "
            "AND last_activity_at >= CAST(:start AS date) - 1"
        ),
        {**params, "tz": tz},
    ).one()
    return {s: row[i] for i, s in enumerate(FUNNEL)}


_NODE_KEYS = {"rep": "p.code", "branch": "b.code", "region": "r.code"}
_ROLLUP_NODE = {"rep": "p.code", "branch": "b.code", "region": "r.code"}
_NODE_JOINS = (
    "JOIN org_units b ON b.id = {t}.branch_id LEFT JOIN org_units r ON r.id = b.parent_id "
    "LEFT JOIN reps p ON p.id = {t}.rep_id"
)
ACTIVITY_METRICS = (
    "visits",
    "visits_decision_maker",
    "calls",
    "calls_connected",
    "calls_decision_maker",
    "calls_presented",
    "quotes",
    "deals_won",
    "payments_failed",
)


def _deal_rows(by: str, params: dict) -> dict[str, dict]:
    open_stages = [s for s in FUNNEL if s != "won"]
    stage_cols = ", ".join(
        f"count(*) FILTER (WHERE d.status = 'open' AND d.stage = :st{i}) AS open_{i}"
        for i in range(len(open_stages))
    )
    params = {**params, **{f"st{i}": s for i, s in enumerate(open_stages)}}
    closed = "d.closed_day BETWEEN :start AND :end"
    won = f"d.status = 'won' AND {closed}"
    sql = (
        f"SELECT {_NODE_KEYS[by]} AS node, "
        "count(*) FILTER (WHERE d.opened_day BETWEEN :start AND :end) AS opened, "
        f"count(*) FILTER (WHERE {won}) AS won, "
        f"count(*) FILTER (WHERE d.status = 'lost' AND {closed}) AS lost, "
        f"coalesce(sum(d.amount) FILTER (WHERE {won}), 0) AS won_amount, "
        f"avg(extract(epoch FROM d.closed_at - d.opened_at) / 86400) FILTER (WHERE {won}) "
        "AS cycle_avg, percentile_cont(0.5) WITHIN GROUP (ORDER BY "
        "extract(epoch FROM d.closed_at - d.opened_at) / 86400) FILTER (WHERE "
        f"{won}) AS cycle_median, count(*) FILTER (WHERE d.status = 'open' "
        f"AND d.reached_at ? 'visit') AS open_qualified, {stage_cols} "
        f"FROM deals d {_NODE_JOINS.format(t='d')} "
        "WHERE d.branch_id = ANY(:b) GROUP BY 1"
    )
    out = {}
    for row in db.session.execute(text(sql), params).mappings():
        entry = dict(row)
        entry["open_by_stage"] = {s: row[f"open_{i}"] for i, s in enumerate(open_stages)}
        out[row["node"]] = entry
    return out


def _activity(by: str, params: dict) -> dict[str, dict[str, float]]:
    sql = (
        f"SELECT {_ROLLUP_NODE[by]} AS node, x.metric, sum(x.value) "
        f"FROM daily_rollups x {_NODE_JOINS.format(t='x')} "
        "WHERE x.branch_id = ANY(:b) AND x.day BETWEEN :start AND :end "
        "AND x.metric = ANY(:m) GROUP BY 1, 2"
    )
    out: dict[str, dict[str, float]] = {}
    for node, metric, value in db.session.execute(
        text(sql), {**params, "m": list(ACTIVITY_METRICS)}
    ):
        out.setdefault(node, {})[metric] = float(value)
    return out


def _reps(by: str, branches: list[int]) -> dict[str, int]:
    key = {"rep": "p.code", "branch": "b.code", "region": "r.code"}[by]
    sql = (
        f"SELECT {key}, count(*) FROM reps p JOIN org_units b ON b.id = p.branch_id "
        "LEFT JOIN org_units r ON r.id = b.parent_id WHERE p.active "
        "AND p.branch_id = ANY(:b) GROUP BY 1"
    )
    return dict(db.session.execute(text(sql), {"b": branches}).all())


def _node_figures(by: str, branches: list[int], start: date, end: date) -> dict[str, dict]:
    params = {"b": branches, "start": start, "end": end}
    deals, activity, reps = _deal_rows(by, params), _activity(by, params), _reps(by, branches)
    out = {}
    for node in sorted(set(deals) | set(activity), key=str):
        d = deals.get(node, {})
        won, lost = d.get("won", 0), d.get("lost", 0)
        rate = win_rate(won, lost)
        won_amount = float(d.get("won_amount") or 0)
        cycle = d.get("cycle_avg")
        acts = activity.get(node, {})
        out[node] = {
            "node": node,
            "deals_opened": d.get("opened", 0),
            "open_by_stage": d.get("open_by_stage", {}),
            "won": won,
            "lost": lost,
            "win_rate": rate,
            "won_amount": won_amount,
            "cycle_days": {
                "mean": float(cycle) if cycle is not None else None,
                "median": float(d["cycle_median"]) if d.get("cycle_median") is not None else None,
            },
            "velocity_per_day": kpis.velocity(
                d.get("open_qualified", 0),
                rate,
                won_amount / won if won else None,
                float(cycle) if cycle else None,
            ),
            "activity": acts,
            "active_reps": reps.get(node, 1 if by == "rep" else 0),
            "kpis": kpis.telemarketing(
                acts,
                won=won,
                quotes=acts.get("quotes", 0),
                reps=reps.get(node, 1 if by == "rep" else 0),
                won_amount=won_amount,
            ),
        }
    return out


def metrics_by(principal: Principal, unit_code: str, start: date, end: date, by: str) -> dict:
    """Return KPIs per region, branch or rep under a unit, with the previous period's deltas.

    Open deals are counted by their current stage; won and lost deals by the
    day they closed; won revenue is the sum of won amounts (in deal currency);
    activity comes from the daily rollups. The previous period is the same
    number of days just before ``start``.
    """
    unit = resolve_unit(principal, unit_code)
    branches = branch_ids_under(principal, unit_code)
    current = _node_figures(by, branches, start, end)
    days = (end - start).days + 1
    before = _node_figures(by, branches, start - timedelta(days=days), start - timedelta(days=1))
    for node, row in current.items():
        prev = before.get(node, {})
        row["change"] = {
            k: kpis.delta(row[k], prev.get(k))
            for k in ("won", "won_amount", "win_rate", "deals_opened")
        }
    return {
        "unit": {"code": unit.code, "name": unit.name, "kind": unit.kind},
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "previous_period": {
            "from": (start - timedelta(days=days)).isoformat(),
            "to": (start - timedelta(days=1)).isoformat(),
        },
        "by": by,
        "rows": list(current.values()),
    }
