"""Read models for dashboards and the read API: served from rollups and projections."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import text

from hq_server.extensions import db
from hq_server.metrics import kpis
from hq_server.metrics.funnel import funnel_steps, win_rate
from hq_server.services.scope import Principal, branch_ids_under, resolve_unit, unit_row_ids
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
    # One scan of the cohort: how far its deals got, and how long each step took.
    cohort = conn.execute(
        text(
            f"SELECT count(*) AS opened, {reach_cols}, {_DAYS_TO_NEXT} FROM deals "
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
                "SELECT metric, sum(value) FROM unit_rollups WHERE unit_id = ANY(:u) "
                "AND day BETWEEN :start AND :end AND metric = ANY(:m) GROUP BY metric"
            ),
            {**params, "u": unit_row_ids(principal, unit_code), "m": list(_ACTIVITY)},
        ).all()
    )
    won, lost = closed.get("won", 0), closed.get("lost", 0)
    steps = funnel_steps(list(FUNNEL), reached)
    medians = [getattr(cohort, f"t{i}") for i in range(len(FUNNEL) - 1)]
    for step, days in zip(steps, [*medians, None], strict=True):
        step["median_days_to_next"] = None if days is None else round(float(days), 2)
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


# Median days from reaching each stage to reaching the next (time in stage), per cohort.
_DAYS_TO_NEXT = ", ".join(
    "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM "
    f"(reached_at->>:s{i + 1})::timestamptz - (reached_at->>:s{i})::timestamptz) / 86400)"
    f" FILTER (WHERE reached_at ? :s{i + 1}) AS t{i}"
    for i in range(len(FUNNEL) - 1)
)


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


_PERIODS = {"": (":start", ":end"), "p_": (":p_start", ":p_end")}


def _deal_rows(by: str, params: dict) -> dict[str, dict[str, dict]]:
    """Deal figures per node for the period and the previous one, in one bounded scan.

    Only open deals (``closed_day IS NULL``) and deals opened or closed within the two
    periods are read, through the (branch, day) indexes.
    """
    open_stages = [s for s in FUNNEL if s != "won"]
    stage_cols = ", ".join(
        f"count(*) FILTER (WHERE d.status = 'open' AND d.stage = :st{i}) AS open_{i}"
        for i in range(len(open_stages))
    )
    params = {**params, **{f"st{i}": s for i, s in enumerate(open_stages)}}
    cycle = "extract(epoch FROM d.closed_at - d.opened_at) / 86400"
    cols = []
    for tag, (lo, hi) in _PERIODS.items():
        closed = f"d.closed_day BETWEEN {lo} AND {hi}"
        won = f"d.status = 'won' AND {closed}"
        cols += [
            f"count(*) FILTER (WHERE d.opened_day BETWEEN {lo} AND {hi}) AS {tag}opened",
            f"count(*) FILTER (WHERE {won}) AS {tag}won",
            f"count(*) FILTER (WHERE d.status = 'lost' AND {closed}) AS {tag}lost",
            f"coalesce(sum(d.amount) FILTER (WHERE {won}), 0) AS {tag}won_amount",
            f"avg({cycle}) FILTER (WHERE {won}) AS {tag}cycle_avg",
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {cycle}) FILTER (WHERE {won}) "
            f"AS {tag}cycle_median",
        ]
    sql = (
        f"SELECT {_NODE_KEYS[by]} AS node, {', '.join(cols)}, "
        "count(*) FILTER (WHERE d.status = 'open' AND d.reached_at ? 'visit') "
        f"AS open_qualified, {stage_cols} FROM deals d {_NODE_JOINS.format(t='d')} "
        "WHERE d.branch_id = ANY(:b) AND (d.closed_day IS NULL "
        "OR d.closed_day BETWEEN :p_start AND :end OR d.opened_day BETWEEN :p_start AND :end) "
        "GROUP BY 1"
    )
    out: dict[str, dict[str, dict]] = {"": {}, "p_": {}}
    for row in db.session.execute(text(sql), params).mappings():
        by_stage = {s: row[f"open_{i}"] for i, s in enumerate(open_stages)}
        for tag in _PERIODS:
            entry = {
                key: row[tag + key]
                for key in ("opened", "won", "lost", "won_amount", "cycle_avg", "cycle_median")
            }
            entry.update(open_qualified=row["open_qualified"], open_by_stage=by_stage)
            out[tag][row["node"]] = entry
    return out


def _activity(by: str, params: dict) -> dict[str, dict[str, dict[str, float]]]:
    """Activity rollups per node and metric for the period and the previous one.

    Per rep from the rep rows; per branch or region from the branch rows of
    ``unit_rollups`` (a tenth as many rows: no rep dimension).
    """
    if by == "rep":
        source = f"daily_rollups x {_NODE_JOINS.format(t='x')} WHERE x.branch_id = ANY(:b)"
    else:
        source = (
            "unit_rollups x JOIN org_units b ON b.id = x.unit_id "
            "LEFT JOIN org_units r ON r.id = b.parent_id WHERE x.unit_id = ANY(:b)"
        )
    sql = (
        f"SELECT {_ROLLUP_NODE[by]} AS node, x.metric, "
        "sum(x.value) FILTER (WHERE x.day BETWEEN :start AND :end), "
        "sum(x.value) FILTER (WHERE x.day BETWEEN :p_start AND :p_end) "
        f"FROM {source} AND x.day BETWEEN :p_start AND :end "
        "AND x.metric = ANY(:m) GROUP BY 1, 2"
    )
    out: dict[str, dict[str, dict[str, float]]] = {"": {}, "p_": {}}
    for node, metric, now, before in db.session.execute(
        text(sql), {**params, "m": list(ACTIVITY_METRICS)}
    ):
        for tag, value in (("", now), ("p_", before)):
            if value is not None:
                out[tag].setdefault(node, {})[metric] = float(value)
    return out


def _reps(by: str, branches: list[int]) -> dict[str, int]:
    key = {"rep": "p.code", "branch": "b.code", "region": "r.code"}[by]
    sql = (
        f"SELECT {key}, count(*) FROM reps p JOIN org_units b ON b.id = p.branch_id "
        "LEFT JOIN org_units r ON r.id = b.parent_id WHERE p.active "
        "AND p.branch_id = ANY(:b) GROUP BY 1"
    )
    return dict(db.session.execute(text(sql), {"b": branches}).all())


def _node_figures(
    by: str, branches: list[int], start: date, end: date
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Return the figures per node for [start, end] and for the same days just before."""
    days = (end - start).days + 1
    params = {
        "b": branches,
        "start": start,
        "end": end,
        "p_start": start - timedelta(days=days),
        "p_end": start - timedelta(days=1),
    }
    deals, activity, reps = _deal_rows(by, params), _activity(by, params), _reps(by, branches)
    return (
        _figures(by, deals[""], activity[""], reps),
        _figures(by, deals["p_"], activity["p_"], reps),
    )


def _figures(by: str, deals: dict, activity: dict, reps: dict) -> dict[str, dict]:
    out = {}
    for node in sorted(set(deals) | set(activity) | set(reps), key=str):
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
    current, before = _node_figures(by, branches, start, end)
    days = (end - start).days + 1
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
