"""The HQ overview, the region page and the branch page: the same scope as the API."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, g, redirect, render_template, url_for
from flask_babel import gettext

from hq_server.services import flags, reports, violations
from hq_server.services.org import HQ_CODE
from hq_server.services.scope import resolve_unit
from hq_server.web import charts, queries
from hq_server.web.labels import METRIC_LABELS, STAGE_LABELS, label
from hq_server.web.params import period

bp = Blueprint("units", __name__)
FLAG_WEEKS = 5


@bp.get("/")
def home():
    """Open the page of the signed-in user's role and scope."""
    unit = resolve_unit(g.principal, g.principal.scope_code)
    if g.user.role == "finance":
        return redirect(url_for("console.finance.page", unit=unit.code))
    if unit.kind == "hq":
        return redirect(url_for("console.units.overview"))
    if unit.kind == "region":
        return redirect(url_for("console.units.region", code=unit.code))
    return redirect(url_for("console.units.branch", code=unit.code))


def _lagging(code: str, end) -> list[dict]:
    """Return the flags under ``code`` of the last weeks that are not resolved."""
    rows = flags.list_flags(
        g.principal, code, status=None, start=end - timedelta(weeks=FLAG_WEEKS), end=end
    )
    return [f for f in rows if f["status"] != "resolved"]


def _trend_chart(trend: dict, metric: str) -> dict:
    # Won amounts are summed in the deals' own currencies, so they are plain numbers here.
    return charts.lines(trend["weeks"], list(trend["series"][metric].items()), "number")


@bp.get("/overview")
def overview():
    """Every region side by side: KPIs, chart, lagging list with reasons, weekly trend."""
    unit = resolve_unit(g.principal, HQ_CODE)
    p = period()
    rows = queries.with_every_node(
        reports.metrics_by(g.principal, unit.code, p.start, p.end, "region")["rows"],
        [c.code for c in queries.children(g.principal, unit.code)],
    )
    names = [r["node"] for r in rows]
    trend = queries.weekly_trend(g.principal, unit.code, p.end)
    return render_template(
        "console/overview.html",
        unit=unit,
        period=p,
        rows=rows,
        flags=_lagging(unit.code, p.end),
        trend=trend,
        won_chart=charts.bars(
            names,
            [(gettext("Won revenue"), [r["won_amount"] for r in rows], "number")],
        ),
        rate_chart=charts.bars(
            names,
            [
                (gettext("Win rate"), [r["win_rate"] for r in rows], "percent"),
                (gettext("Contact rate"), [r["kpis"].get("contact_rate") for r in rows], "percent"),
                (
                    gettext("Decision-maker visit rate"),
                    [r["kpis"].get("dm_visit_rate") for r in rows],
                    "percent",
                ),
            ],
        ),
        visits_chart=_trend_chart(trend, "visits"),
        revenue_chart=_trend_chart(trend, "won_amount"),
    )


def _funnel_plot(rows: list[dict]) -> tuple[list, dict]:
    points = charts.funnel_plot_points([(r["node"], r["won"], r["won"] + r["lost"]) for r in rows])
    option = charts.funnel_plot(
        points,
        {
            "units": gettext("Branches"),
            "peers": gettext("Region's win rate"),
            "warn": gettext("2σ limit"),
            "alert": gettext("3σ limit"),
            "n": gettext("Closed deals"),
            "rate": gettext("Win rate"),
        },
    )
    return points, option


def _approvals_under(code: str) -> list[dict]:
    """Return the pending approvals of the branches under ``code``."""
    branches = {b.code for b in queries.children(g.principal, code)} | {code}
    return [a for a in violations.list_approvals(g.principal, "pending") if a["branch"] in branches]


def can_decide(approval: dict) -> bool:
    """Tell whether the signed-in user may approve or refuse ``approval``."""
    role = g.user.role
    return role == approval["approver_role"] or role in violations.ALWAYS_APPROVE


@bp.get("/regions/<code>")
def region(code: str):
    """A region's branches side by side, their funnel plot, flags and pending approvals."""
    unit = resolve_unit(g.principal, code)
    if unit.kind != "region":
        abort(404)
    p = period()
    rows = queries.with_every_node(
        reports.metrics_by(g.principal, code, p.start, p.end, "branch")["rows"],
        [c.code for c in queries.children(g.principal, code)],
    )
    points, plot = _funnel_plot(rows)
    names = [r["node"] for r in rows]
    return render_template(
        "console/region.html",
        unit=unit,
        period=p,
        rows=rows,
        points=points,
        plot=plot,
        flags=_lagging(code, p.end),
        approvals=_approvals_under(code),
        can_decide=can_decide,
        can_acknowledge=g.user.role in violations.ACKNOWLEDGERS,
        won_chart=charts.bars(
            names,
            [
                (gettext("Deals won"), [r["won"] for r in rows], "number"),
                (gettext("Deals lost"), [r["lost"] for r in rows], "number"),
            ],
        ),
        trend_chart=_trend_chart(queries.weekly_trend(g.principal, code, p.end), "visits"),
    )


@bp.get("/branches/<code>")
def branch(code: str):
    """A branch's funnel, activity per rep, SLA clocks, violations and sync health."""
    unit = resolve_unit(g.principal, code)
    if unit.kind != "branch":
        abort(404)
    p = period()
    result = reports.funnel(g.principal, code, p.start, p.end)
    stages = result["cohort"]["stages"]
    reps = queries.with_every_node(
        reports.metrics_by(g.principal, code, p.start, p.end, "rep")["rows"],
        [r.code for r in queries.reps_under(g.principal, code)],
    )
    open_violations = violations.list_violations(
        g.principal, code, start=p.start, end=p.end, limit=100
    )
    return render_template(
        "console/branch.html",
        unit=unit,
        period=p,
        funnel=result,
        stages=stages,
        reps=reps,
        clocks=queries.sla_clocks(g.principal, code),
        violations=open_violations,
        health=queries.sync_health(g.principal, code),
        feed=queries.recent_events(g.principal, code),
        flags=_lagging(code, p.end),
        approvals=_approvals_under(code),
        can_decide=can_decide,
        can_acknowledge=g.user.role in violations.ACKNOWLEDGERS,
        funnel_chart=charts.funnel(
            [(label(STAGE_LABELS, s["stage"]), s["reached"]) for s in stages]
        ),
        rep_chart=charts.bars(
            [r["node"] for r in reps],
            [
                (
                    label(METRIC_LABELS, "visits"),
                    [r["activity"].get("visits", 0) for r in reps],
                    "number",
                ),
                (gettext("Calls"), [r["activity"].get("calls", 0) for r in reps], "number"),
                (gettext("Quotes"), [r["activity"].get("quotes", 0) for r in reps], "number"),
            ],
        ),
    )
