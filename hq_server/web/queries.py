"""Reads the pages need beyond the API's: trends, live feed, sync health, clocks, drill-down.

Each one is scoped through ``services/scope.py`` (``resolve_unit`` and
``branch_ids_under``) exactly like the services the API calls; an id outside
the caller's subtree raises ``OutOfScope``, as a unit code does. Reads come
from rollups, the deal projection and the indexed event columns (by deal, by
branch and day), never from a scan of the whole log.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select, text

from hq_server.extensions import db
from hq_server.metrics.weeks import week_of
from hq_server.models import AgentStream, Deal, OrgUnit, Rep, SeqGap
from hq_server.services import playbooks
from hq_server.services.scans import lineage
from hq_server.services.scope import OutOfScope, Principal, branch_ids_under, resolve_unit

TREND_METRICS = ("visits", "quotes", "deals_won", "won_amount")
FEED_DAYS = 7
SLA_LOOKBACK = timedelta(days=14)


def children(principal: Principal, code: str) -> list[OrgUnit]:
    """Return the active units right under ``code`` (regions of HQ, branches of a region)."""
    unit = resolve_unit(principal, code)
    return list(
        db.session.scalars(
            select(OrgUnit)
            .where(OrgUnit.parent_id == unit.id, OrgUnit.active_to.is_(None))
            .order_by(OrgUnit.code)
        )
    )


def children_and_theirs(principal: Principal, code: str) -> list[OrgUnit]:
    """Return ``children`` of ``code``, each followed by its own children unless a branch.

    One read for a unit picker: HQ's regions and their branches, a region's branches.
    """
    unit = resolve_unit(principal, code)
    below = (
        select(OrgUnit.id)
        .where(OrgUnit.parent_id == unit.id, OrgUnit.active_to.is_(None))
        .where(OrgUnit.kind != "branch")
    )
    rows = db.session.scalars(
        select(OrgUnit)
        .where(OrgUnit.active_to.is_(None))
        .where(db.or_(OrgUnit.parent_id == unit.id, OrgUnit.parent_id.in_(below)))
        .order_by(OrgUnit.code)
    )
    under = defaultdict(list)
    for row in rows:
        under[row.parent_id].append(row)
    out = []
    for child in under[unit.id]:
        out.append(child)
        if child.kind != "branch":
            out += under[child.id]
    return out


def reps_under(principal: Principal, code: str) -> list[Rep]:
    """Return the active reps of the branches under ``code``, by code."""
    branches = branch_ids_under(principal, code)
    return list(
        db.session.scalars(
            select(Rep).where(Rep.branch_id.in_(branches), Rep.active).order_by(Rep.code)
        )
    )


def with_every_node(rows: list[dict], nodes: list[str]) -> list[dict]:
    """Return ``metrics_by`` rows with an empty row for each node that had no activity.

    A unit with nothing in the period is news too (a silent branch), so it is shown.
    """
    seen = {r["node"] for r in rows}
    empty_change = {"previous": None, "change": None, "change_pct": None}
    blanks = [
        {
            "node": node,
            "deals_opened": 0,
            "open_by_stage": {},
            "won": 0,
            "lost": 0,
            "win_rate": None,
            "won_amount": 0.0,
            "cycle_days": {"mean": None, "median": None},
            "velocity_per_day": None,
            "activity": {},
            "active_reps": 0,
            "kpis": {},
            "change": {k: empty_change for k in ("won", "won_amount", "win_rate", "deals_opened")},
        }
        for node in nodes
        if node not in seen
    ]
    return sorted(rows + blanks, key=lambda r: str(r["node"]))


def _child_key(kind: str) -> str:
    return {"hq": "r.code", "region": "b.code", "branch": "p.code"}[kind]


def weekly_trend(principal: Principal, code: str, end: date, weeks: int = 12) -> dict:
    """Return per ISO week and per child unit (or rep) the activity and won revenue."""
    unit = resolve_unit(principal, code)
    branches = branch_ids_under(principal, code)
    last_monday = week_of(end)
    start = last_monday - timedelta(weeks=weeks - 1)
    if unit.kind == "branch":  # per rep: the rep rows
        source = (
            "daily_rollups x JOIN org_units b ON b.id = x.branch_id "
            "LEFT JOIN org_units r ON r.id = b.parent_id "
            "LEFT JOIN reps p ON p.id = x.rep_id WHERE x.branch_id = ANY(:b)"
        )
    elif unit.kind == "hq":  # per region: the region rows (HQ's whole subtree is in view)
        source = (
            "unit_rollups x JOIN org_units r ON r.id = x.unit_id WHERE x.unit_id IN "
            "(SELECT parent_id FROM org_units WHERE id = ANY(:b))"
        )
    else:  # per branch: the branch rows of the unit rollups, a tenth as many as rep rows
        source = (
            "unit_rollups x JOIN org_units b ON b.id = x.unit_id "
            "LEFT JOIN org_units r ON r.id = b.parent_id WHERE x.unit_id = ANY(:b)"
        )
    rows = db.session.execute(
        text(
            f"SELECT date_trunc('week', x.day)::date AS week, {_child_key(unit.kind)} AS node, "
            f"x.metric, sum(x.value) FROM {source} "
            "AND x.day BETWEEN :s AND :e AND x.metric = ANY(:m) GROUP BY 1, 2, 3"
        ),
        {"b": branches, "s": start, "e": end, "m": list(TREND_METRICS)},
    )
    weeks_list = [start + timedelta(weeks=i) for i in range(weeks)]
    series: dict[str, dict[str, dict[date, float]]] = defaultdict(lambda: defaultdict(dict))
    for week, node, metric, value in rows:
        series[metric][node or "?"][week] = float(value)
    return {
        "weeks": [w.isoformat() for w in weeks_list],
        "series": {
            metric: {
                node: [values.get(w, 0.0) for w in weeks_list]
                for node, values in sorted(series[metric].items())
            }
            for metric in TREND_METRICS
        },
    }


def recent_events(principal: Principal, code: str, limit: int = 15) -> list[dict]:
    """Return the newest events received from the branches under ``code`` (last week)."""
    branches = branch_ids_under(principal, code)
    since = date.today() - timedelta(days=FEED_DAYS)
    rows = db.session.execute(
        text(
            "SELECT e.id, e.type, e.occurred_at, e.received_at, e.deal_id, e.status, "
            "e.payload->'data' AS data, b.code AS branch, p.code AS rep, p.name AS rep_name "
            "FROM events e JOIN org_units b ON b.id = e.branch_id "
            "JOIN reps p ON p.id = e.rep_id WHERE e.branch_id = ANY(:b) AND e.local_day >= :d "
            "ORDER BY e.received_at DESC, e.occurred_at DESC LIMIT :n"
        ),
        {"b": branches, "d": since, "n": limit},
    )
    return [dict(r) for r in rows.mappings()]


def sync_health(principal: Principal, code: str) -> dict:
    """Return each agent of the branch: last push, version, seq; open gaps; playbook versions."""
    branches = branch_ids_under(principal, code)
    agents = [
        {
            "agent_id": s.agent_id,
            "agent_version": s.agent_version,
            "last_push_at": s.last_push_at,
            "pushes": s.pushes,
            "events_accepted": s.events_accepted,
            "max_seq": s.max_seq,
        }
        for s in db.session.scalars(
            select(AgentStream)
            .where(AgentStream.branch_id.in_(branches))
            .order_by(AgentStream.last_push_at.desc().nulls_last())
        )
    ]
    gaps = [
        {"agent_id": g.agent_id, "first": g.first_seq, "last": g.last_seq, "since": g.detected_at}
        for g in db.session.scalars(
            select(SeqGap).where(SeqGap.branch_id.in_(branches)).order_by(SeqGap.first_seq)
        )
    ]
    agent_playbook = db.session.execute(
        text(
            "SELECT playbook_version FROM events WHERE branch_id = ANY(:b) "
            "AND local_day >= :d AND playbook_version IS NOT NULL "
            "ORDER BY received_at DESC LIMIT 1"
        ),
        {"b": branches, "d": date.today() - timedelta(days=30)},
    ).scalar()
    current = playbooks.latest()
    return {
        "agents": agents,
        "gaps": gaps,
        "missing": sum(g["last"] - g["first"] + 1 for g in gaps),
        "agent_playbook": agent_playbook,
        "current_playbook": current.version if current else None,
    }


def sla_clocks(principal: Principal, code: str, now: datetime | None = None) -> list[dict]:
    """Return the SLA clocks started in the last two weeks under a branch, due ones first."""
    from shared.playbook import calendar_for

    now = now or datetime.now(UTC)
    unit = resolve_unit(principal, code)
    branches = branch_ids_under(principal, code)
    current = playbooks.latest()
    if current is None or not branches:
        return []
    playbook = playbooks.compiled(current.version, current.document)
    cal = calendar_for(playbook, lineage(unit))
    clocks = []
    for rule in playbook.rules_of_kind("sla"):
        types = [rule.start_type, *rule.stop_types]
        rows = db.session.execute(
            text(
                "SELECT e.id, e.type, e.deal_id, e.occurred_at, e.payload, p.code AS rep "
                "FROM events e JOIN reps p ON p.id = e.rep_id WHERE e.branch_id = ANY(:b) "
                "AND e.local_day >= :d AND e.type = ANY(:t) AND e.status = 'counted' "
                "AND e.deal_id IS NOT NULL ORDER BY e.occurred_at"
            ),
            {"b": branches, "d": (now - SLA_LOOKBACK).date(), "t": types},
        ).all()
        stops: dict[uuid.UUID, list[datetime]] = defaultdict(list)
        for r in rows:
            if rule.stops_on(r.payload):
                stops[r.deal_id].append(r.occurred_at)
        for r in rows:
            if not rule.starts_on(r.payload):
                continue
            answered = min((t for t in stops[r.deal_id] if t >= r.occurred_at), default=None)
            status, response_by, late = rule.status(r.occurred_at, answered, now, cal)
            clocks.append(
                {
                    "rule_id": rule.id,
                    "message": rule.message.to_dict(),
                    "deal": r.deal_id,
                    "rep": r.rep,
                    "started_at": r.occurred_at,
                    "response_by": response_by,
                    "answered_at": answered,
                    "status": status,
                    "late_seconds": late,
                }
            )
    order = {"due": 0, "failed": 1, "met": 2}
    clocks.sort(key=lambda c: (order[c["status"]], c["response_by"]))
    return clocks


def _visible_branch(principal: Principal, branch_id: int) -> None:
    if branch_id not in branch_ids_under(principal, principal.scope_code):
        raise OutOfScope(str(branch_id))


def rep_of(principal: Principal, code: str) -> tuple[Rep, OrgUnit]:
    """Return a rep and its branch if the rep's branch is in the caller's scope."""
    rep = db.session.scalar(select(Rep).where(Rep.code == code))
    if rep is None:
        raise OutOfScope(code)
    _visible_branch(principal, rep.branch_id)
    return rep, db.session.get(OrgUnit, rep.branch_id)


def rep_deals(rep: Rep, limit: int = 100) -> list[Deal]:
    """Return the rep's deals, the most recently active first."""
    return list(
        db.session.scalars(
            select(Deal)
            .where(Deal.rep_id == rep.id)
            .order_by(Deal.last_activity_at.desc().nulls_last())
            .limit(limit)
        )
    )


def rep_events(rep: Rep, limit: int = 30) -> list[dict]:
    """Return the rep's newest events of the last month."""
    rows = db.session.execute(
        text(
            "SELECT e.id, e.type, e.occurred_at, e.deal_id, e.status, e.payload->'data' AS data "
            "FROM events e WHERE e.branch_id = :b AND e.rep_id = :r AND e.local_day >= :d "
            "ORDER BY e.occurred_at DESC LIMIT :n"
        ),
        {"b": rep.branch_id, "r": rep.id, "d": date.today() - timedelta(days=31), "n": limit},
    )
    return [dict(r) for r in rows.mappings()]


def deal_of(principal: Principal, deal_id: uuid.UUID) -> tuple[Deal, OrgUnit, Rep | None]:
    """Return a deal, its branch and rep if the deal's branch is in the caller's scope."""
    deal = db.session.get(Deal, deal_id)
    if deal is None:
        raise OutOfScope(str(deal_id))
    _visible_branch(principal, deal.branch_id)
    rep = db.session.get(Rep, deal.rep_id) if deal.rep_id else None
    return deal, db.session.get(OrgUnit, deal.branch_id), rep


def deal_timeline(principal: Principal, deal: Deal) -> list[dict]:
    """Return every event of the deal in the order it happened, with its rep."""
    rows = db.session.execute(
        text(
            "SELECT e.id, e.type, e.occurred_at, e.received_at, e.status, e.seq, e.agent_id, "
            "e.playbook_version, e.payload->'data' AS data, p.code AS rep, p.name AS rep_name "
            "FROM events e JOIN reps p ON p.id = e.rep_id WHERE e.deal_id = :d "
            "AND e.branch_id = ANY(:b) ORDER BY e.occurred_at, e.id"
        ),
        {"d": deal.id, "b": branch_ids_under(principal, principal.scope_code)},
    )
    return [dict(r) for r in rows.mappings()]
