"""Drill-down below the branch: a rep's figures and deals, a deal's timeline of events."""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, g, render_template

from hq_server.services import reports, violations
from hq_server.web import queries
from hq_server.web.params import period

bp = Blueprint("drill", __name__)


@bp.get("/reps/<code>")
def rep(code: str):
    """A rep's KPIs for the period, deals, newest entries and violations."""
    person, branch = queries.rep_of(g.principal, code)
    p = period()
    rows = reports.metrics_by(g.principal, branch.code, p.start, p.end, "rep")["rows"]
    figures = next((r for r in rows if r["node"] == person.code), None)
    found = violations.list_violations(g.principal, branch.code, start=p.start, end=p.end)
    return render_template(
        "console/rep.html",
        rep=person,
        branch=branch,
        period=p,
        figures=figures,
        deals=queries.rep_deals(person),
        events=queries.rep_events(person),
        violations=[v for v in found if v["rep_id"] == person.id],
    )


@bp.get("/deals/<deal_id>")
def deal(deal_id: str):
    """A deal's current state and every event of it, in the order they happened."""
    try:
        key = uuid.UUID(deal_id)
    except ValueError:
        abort(404)
    found, branch, person = queries.deal_of(g.principal, key)
    timeline = queries.deal_timeline(g.principal, found)
    return render_template(
        "console/deal.html",
        deal=found,
        branch=branch,
        rep=person,
        timeline=timeline,
        reached=sorted((found.reached_at or {}).items(), key=lambda kv: kv[1]),
    )
