"""Read models for dashboards and the read API: served from rollups and projections."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import text

from hq_server.extensions import db
from hq_server.metrics import deal_rollups as dr
from hq_server.metrics import kpis, weeks
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
    """Return the cohort funnel, win rate and activity of a unit's subtree for a period.

    Everything comes from the unit's own rollup rows (a few hundred rows whatever the
    size of the subtree): the deals' contributions (``metrics.deal_rollups``) and the
    events' activity counts, both on the branches' local days.
    """
    unit = resolve_unit(principal, unit_code)
    source, bounds = _rows_of(
        weeks.split(start, end),
        ("unit_rollups", "weekly_unit_rollups"),
        "x.unit_id = ANY(:u) AND (x.metric LIKE 'deal\\_%' OR x.metric = ANY(:m))",
        "x.unit_id",
    )
    sums = {
        metric: float(value)
        for metric, value in db.session.execute(
            text(f"SELECT metric, sum(v) FROM ({source}) s GROUP BY metric"),
            {"u": unit_row_ids(principal, unit_code), "m": list(_ACTIVITY), **bounds},
        )
    }
    count = lambda metric: int(sums.get(metric, 0))  # noqa: E731
    reached = {s: count(dr.reached(s)) for s in FUNNEL}
    steps = funnel_steps(list(FUNNEL), reached)
    for i, step in enumerate(steps):
        nxt = FUNNEL[i + 1] if i + 1 < len(FUNNEL) else None
        hist = {b: sums.get(dr.step_bucket(i, b), 0) for b in range(len(dr.EDGES))}
        days = dr.median(hist) if nxt else None
        n = reached.get(nxt, 0) if nxt else 0
        step["median_days_to_next"] = None if days is None else round(days, 2)
        step["mean_days_to_next"] = (
            round(sums.get(dr.step_seconds(i), 0) / n / 86400, 2) if n else None
        )
    won, lost = count(dr.WON), count(dr.LOST)
    return {
        "unit": {"code": unit.code, "name": unit.name, "kind": unit.kind},
        "period": {"from": start, "to": end},
        "cohort": {
            "label": "cohort: deals opened in the period, stages they ever reached",
            "deals_opened": count(dr.COHORT),
            "stages": steps,
            "median_note": MEDIAN_NOTE,
        },
        "flow": {
            "label": "period (flow): deals entering each stage in the period; mixes cohorts",
            "stages": funnel_steps(list(FUNNEL), {s: count(dr.entered(s)) for s in FUNNEL}),
        },
        "closed": {"won": won, "lost": lost, "win_rate": win_rate(won, lost)},
        "activity": {m: sums.get(m, 0.0) for m in _ACTIVITY},
    }


MEDIAN_NOTE = (
    "medians are estimated within histogram buckets (edges in days: "
    + ", ".join(f"{round(e, 3):g}" for e in dr.EDGES)
    + "); means are exact"
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
_OPEN_STAGES = [s for s in FUNNEL if s != "won"]
_DEAL_METRICS = [
    dr.COHORT,
    dr.WON,
    dr.LOST,
    dr.WON_AMOUNT,
    dr.CYCLE,
    *(dr.cycle_bucket(b) for b in range(len(dr.EDGES))),
]
_CURRENT_METRICS = [dr.OPEN_QUALIFIED, *(dr.open_at(s) for s in _OPEN_STAGES)]
# What the previous period is read for: the changes of metrics_by (``_changed``).
_CHANGE_METRICS = [dr.COHORT, dr.WON, dr.LOST, dr.WON_AMOUNT]
CHANGES = ("won", "won_amount", "win_rate", "deals_opened")


def _nodes(
    by: str, unit, branches: list[int], offset: int = 0, limit: int | None = None
) -> tuple[list[tuple[str, list[int], bool]], int]:
    """Return one page of ``(code, row ids, active)`` per node, in code order, and the total.

    The row ids are where the node's figures live: rep ids (``daily_rollups``), or unit
    rows (``unit_rollups``): branch rows, or region rows when the whole region is in
    view (the unit read is a region or HQ, so its subtree is in the caller's scope).
    The page is cut in SQL: HQ has ten thousand reps and a page shows a hundred.
    """
    if by == "rep":  # rep codes are unique: a row is a node
        sql = "SELECT code, id, active FROM reps WHERE branch_id = ANY(:b)"
        page = f"SELECT code, ARRAY[id], active, count(*) OVER () FROM ({sql}) n"
    else:
        if by == "branch" or unit.kind == "branch":
            key = "r.code" if by == "region" else "b.code"
            sql = (
                f"SELECT {key} AS code, b.id, true AS active FROM org_units b "
                "LEFT JOIN org_units r ON r.id = b.parent_id WHERE b.id = ANY(:b)"
            )
        else:
            sql = (
                "SELECT r.code, r.id, true AS active FROM org_units r WHERE r.id IN "
                "(SELECT parent_id FROM org_units WHERE id = ANY(:b))"
            )
        page = (
            "SELECT code, array_agg(id), bool_or(active), count(*) OVER () "
            f"FROM ({sql}) n GROUP BY code"
        )
    rows = db.session.execute(
        text(f'{page} ORDER BY code COLLATE "C" OFFSET :offset LIMIT :limit'),
        {"b": branches, "offset": offset, "limit": limit},
    ).all()
    if rows:
        total = rows[0][3]
    else:
        total = db.session.execute(
            text(f"SELECT count(DISTINCT code) FROM ({sql}) n"), {"b": branches}
        ).scalar_one()
    return [(code, list(ids), bool(active)) for code, ids, active, _ in rows], total


def _rows_of(period: weeks.Split, tables: tuple[str, str], where: str, key: str, tag: str = "r"):
    """Return SQL for the rows ``(k, metric, v, d)`` of a split period, and its parameters.

    Whole weeks come from the weekly table (``d`` is the week's Monday: a whole week lies
    inside one period), the days at the ends from the daily one; each range is its own
    branch of a UNION ALL, so that each is one range of the (unit, day) index.
    """
    daily, weekly = tables
    parts, params = [], {}
    for column, table, ranges in (("day", daily, period.days), ("week", weekly, period.weeks)):
        for a, b in ranges:
            n = f"{tag}{len(params) // 2}"
            parts.append(
                f"SELECT {key} AS k, x.metric, x.value AS v, x.{column} AS d FROM {table} x "
                f"WHERE {where} AND x.{column} BETWEEN :{n}a AND :{n}b"
            )
            params |= {f"{n}a": a, f"{n}b": b}
    return " UNION ALL ".join(parts), params


def _sums(by: str, nodes: list[tuple[str, list[int], bool]], branches, params) -> dict:
    """Return ``{period tag: {node: {metric: value}}}`` for the period and the one before.

    The period before holds only ``_CHANGE_METRICS``. Open-deal counters (``CURRENT_DAY``)
    go with both periods: they describe now.
    """
    row_to_node = {row_id: code for code, ids, _ in nodes for row_id in ids}
    if by == "rep":
        # Only the branch rows of the page's reps (every version of their branch).
        where = (
            "x.branch_id = ANY(ARRAY(SELECT b.id FROM org_units b "
            "WHERE b.id = ANY(:b) AND b.code IN (SELECT o.code FROM reps p JOIN org_units o "
            "ON o.id = p.branch_id WHERE p.id = ANY(:ids)))) AND x.rep_id = ANY(:ids)"
        )
        key, daily, weekly = "x.rep_id", "daily_rollups", "weekly_rollups"
    else:
        where = "x.unit_id = ANY(:ids)"
        key, daily, weekly = "x.unit_id", "unit_rollups", "weekly_unit_rollups"
    # The period before is read only for the figures its changes are computed from.
    source, bounds = _rows_of(
        weeks.split(params["start"], params["end"]),
        (daily, weekly),
        f"{where} AND x.metric = ANY(:m)",
        key,
    )
    before, before_bounds = _rows_of(
        weeks.split(params["p_start"], params["p_end"]),
        (daily, weekly),
        f"{where} AND x.metric = ANY(:pm)",
        key,
        "p",
    )
    source, bounds = f"{source} UNION ALL {before}", {**bounds, **before_bounds}
    sql = (
        "SELECT k, metric, sum(v) FILTER (WHERE d >= :start), sum(v) FILTER (WHERE d <= :p_end) "
        f"FROM ({source}) s GROUP BY 1, 2 "
        f"UNION ALL SELECT {key}, x.metric, sum(x.value), sum(x.value) FROM {daily} x "
        f"WHERE {where} AND x.day = :now AND x.metric = ANY(:c) GROUP BY 1, 2"
    )
    out: dict[str, dict] = {"": {}, "p_": {}}
    rows = db.session.execute(
        text(sql),
        {
            **params,
            **bounds,
            "b": branches,
            "ids": list(row_to_node),
            "now": dr.CURRENT_DAY,
            "m": [*ACTIVITY_METRICS, *_DEAL_METRICS],
            "pm": _CHANGE_METRICS,
            "c": _CURRENT_METRICS,
        },
    )
    for row_id, metric, now, before in rows:
        node = row_to_node[row_id]
        for tag, value in (("", now), ("p_", before)):
            if value is not None:
                figures = out[tag].setdefault(node, {})
                figures[metric] = figures.get(metric, 0.0) + float(value)
    return out


def _reps(by: str, branches: list[int], codes: list[str]) -> dict[str, int]:
    """Return the active reps of each node of the page (``codes``) under ``branches``."""
    key = {"rep": "p.code", "branch": "b.code", "region": "r.code"}[by]
    sql = (
        f"SELECT {key}, count(*) FROM reps p JOIN org_units b ON b.id = p.branch_id "
        "LEFT JOIN org_units r ON r.id = b.parent_id WHERE p.active "
        f"AND p.branch_id = ANY(:b) AND {key} = ANY(:codes) GROUP BY 1"
    )
    return dict(db.session.execute(text(sql), {"b": branches, "codes": codes}).all())


def _before(start: date, end: date) -> tuple[date, date]:
    """Return the period of as many days just before ``[start, end]``."""
    days = (end - start).days + 1
    return start - timedelta(days=days), start - timedelta(days=1)


def _node_figures(
    by: str, nodes: list, branches: list[int], start: date, end: date
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Return the figures per node for [start, end], and its sums for the days just before."""
    p_start, p_end = _before(start, end)
    params = {"start": start, "end": end, "p_start": p_start, "p_end": p_end}
    sums = _sums(by, nodes, branches, params) if nodes else {"": {}, "p_": {}}
    reps = _reps(by, branches, [code for code, _, _ in nodes]) if by != "rep" else {}
    shown = [code for code, _, active in nodes if active or code in sums[""]]
    return _figures(by, shown, sums[""], reps), sums["p_"]


def _changed(f: dict) -> dict:
    """Return the figures ``CHANGES`` compares, from a node's sums of ``_CHANGE_METRICS``."""
    won, lost = int(f.get(dr.WON, 0)), int(f.get(dr.LOST, 0))
    return {
        "won": won,
        "won_amount": f.get(dr.WON_AMOUNT, 0.0),
        "win_rate": win_rate(won, lost),
        "deals_opened": int(f.get(dr.COHORT, 0)),
    }


def _figures(by: str, nodes: list[str], sums: dict, reps: dict) -> dict[str, dict]:
    out = {}
    for node in nodes:
        f = sums.get(node, {})
        won, lost = int(f.get(dr.WON, 0)), int(f.get(dr.LOST, 0))
        rate = win_rate(won, lost)
        won_amount = f.get(dr.WON_AMOUNT, 0.0)
        cycle = f[dr.CYCLE] / won / 86400 if won and dr.CYCLE in f else None
        median = dr.median({b: f.get(dr.cycle_bucket(b), 0) for b in range(len(dr.EDGES))})
        acts = {m: f[m] for m in ACTIVITY_METRICS if m in f}
        active = reps.get(node, 0) if by != "rep" else 1
        out[node] = {
            "node": node,
            "deals_opened": int(f.get(dr.COHORT, 0)),
            "open_by_stage": {s: int(f.get(dr.open_at(s), 0)) for s in _OPEN_STAGES},
            "won": won,
            "lost": lost,
            "win_rate": rate,
            "won_amount": won_amount,
            "cycle_days": {
                "mean": None if cycle is None else round(cycle, 4),
                "median": None if median is None else round(median, 2),
            },
            "velocity_per_day": kpis.velocity(
                int(f.get(dr.OPEN_QUALIFIED, 0)),
                rate,
                won_amount / won if won else None,
                cycle or None,
            ),
            "activity": acts,
            "active_reps": active,
            "kpis": kpis.telemarketing(
                acts, won=won, quotes=acts.get("quotes", 0), reps=active, won_amount=won_amount
            ),
        }
    return out


def metrics_by(
    principal: Principal,
    unit_code: str,
    start: date,
    end: date,
    by: str,
    *,
    offset: int = 0,
    limit: int | None = None,
) -> dict:
    """Return KPIs per region, branch or rep under a unit, with the previous period's deltas.

    Deals opened are the period's cohort; open deals are counted by their current
    stage; won and lost deals by the day they closed; won revenue is the sum of won
    deals' amounts (in deal currency); everything comes from rollups. The previous
    period is the same number of days just before ``start``. Rows are in node-code
    order; ``offset``/``limit`` read one page of them (``paging.total`` says how many).
    """
    unit = resolve_unit(principal, unit_code)
    branches = branch_ids_under(principal, unit_code)
    nodes, total = _nodes(by, unit, branches, offset, limit)
    current, before = _node_figures(by, nodes, branches, start, end)
    for node, row in current.items():
        prev = _changed(before.get(node, {}))
        row["change"] = {k: kpis.delta(row[k], prev[k]) for k in CHANGES}
    p_start, p_end = _before(start, end)
    return {
        "unit": {"code": unit.code, "name": unit.name, "kind": unit.kind},
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "previous_period": {"from": p_start.isoformat(), "to": p_end.isoformat()},
        "by": by,
        "paging": {"offset": offset, "limit": limit, "total": total},
        "rows": list(current.values()),
    }
