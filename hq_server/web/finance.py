"""Finance: the live pipeline, the pipeline as it was at a past moment, its changes, export."""

from __future__ import annotations

import inspect
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, g, render_template, request
from flask_babel import gettext

from hq_server.api.export import csv_response
from hq_server.bounds import in_bounds
from hq_server.services import exports, fx
from hq_server.services import pipeline as pipelines
from hq_server.services.scope import resolve_unit
from hq_server.web import charts, queries
from hq_server.web.labels import CATEGORY_LABELS, STAGE_LABELS, TERM_LABELS, label
from hq_server.web.params import read_date, read_moment

bp = Blueprint("finance", __name__)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def supports_at() -> bool:
    """Tell whether the pipeline service can answer for a past moment (``at=``)."""
    return "at" in inspect.signature(pipelines.pipeline).parameters


def supports_changes() -> bool:
    """Tell whether the pipeline service computes the changes bridge."""
    return callable(getattr(pipelines, "changes", None))


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    zone = ZoneInfo(current_app.config["SETTINGS"].default_timezone)
    return moment.replace(tzinfo=zone)


def _month_end(first: date) -> date:
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def read_month(name: str, end: bool = False) -> date | None:
    """Return the first (or, with ``end``, the last) day of the ``YYYY-MM`` month asked for.

    As-of reads and the bridge take whole months; a full date is read as its month.
    """
    raw = request.args.get(name, "").strip()[:7]
    try:
        first = date.fromisoformat(f"{raw}-01")
    except ValueError:
        return None
    if not in_bounds(first):
        return None
    return _month_end(first) if end else first


def _quarter(today: date) -> tuple[date, date]:
    first = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    return first, _month_end(date(first.year, first.month + 2, 1))


def unit_choices(code: str) -> list:
    """Return the units the caller may read a pipeline of: their scope, then below it."""
    return [resolve_unit(g.principal, code), *queries.children_and_theirs(g.principal, code)]


def _by_child(unit, close_from, close_to, as_of) -> list[tuple[str, dict]]:
    """Return each child unit's pipeline (regions of HQ, branches of a region)."""
    if unit.kind == "branch":
        return []
    codes = [child.code for child in queries.children(g.principal, unit.code)]
    found = pipelines.pipeline_by_unit(
        g.principal, codes, close_from=close_from, close_to=close_to, as_of=as_of
    )
    return list(found.items())


BASES = ("applied", "occurred")


def read_basis() -> str:
    """Return the as-of basis asked for: what HQ knew then (default) or what had happened."""
    basis = request.args.get("basis", "applied")
    return basis if basis in BASES else "applied"


def _past(unit, close_from, close_to, at, basis="applied"):
    if at is None or not supports_at():
        return None
    return pipelines.pipeline(
        g.principal, unit.code, close_from=close_from, close_to=close_to, at=at, basis=basis
    )


def _changes(unit, t0, t1, p_from, p_to, term):
    if not supports_changes():
        return None
    extra = {"term": term} if term in TERM_LABELS and term not in ("start", "end") else {}
    # The page does not show the slipped deals: it does not read them.
    return pipelines.changes(g.principal, unit.code, t0, t1, p_from, p_to, slipped=False, **extra)


def _bridge_chart(result: dict, currency: str) -> dict:
    terms = result["terms"]
    signs = {"decreased": -1, "pushed_out": -1, "won": -1, "lost": -1}
    steps = [
        (label(TERM_LABELS, name), signs.get(name, 1) * float(terms[name]["amount"]))
        for name in (
            "start",
            "new",
            "pulled_in",
            "increased",
            "decreased",
            "pushed_out",
            "won",
            "lost",
            "end",
        )
    ]
    names = {"total": gettext("Total"), "up": gettext("Increase"), "down": gettext("Decrease")}
    return charts.waterfall(steps, currency, names)


@bp.get("/finance")
def page():
    """The live pipeline by category, month, stage and region; as-of view; changes bridge."""
    unit = resolve_unit(g.principal, request.args.get("unit") or g.principal.scope_code)
    close_from, close_to = read_month("close_from"), read_month("close_to", end=True)
    as_of = read_date("as_of")
    at = _aware(read_moment("at"))
    basis = read_basis()
    errors = []
    live, regions, past = None, [], None
    try:
        live = pipelines.pipeline(
            g.principal, unit.code, close_from=close_from, close_to=close_to, as_of=as_of
        )
        regions = _by_child(unit, close_from, close_to, as_of)
    except fx.FxError as exc:
        errors.append(str(exc))
    try:
        past = _past(unit, close_from, close_to, at, basis)
    except ValueError as exc:  # a missing rate, or a window of the history it cannot read
        errors.append(str(exc))
    today = date.today()
    p_from, p_to = _quarter(today)
    p_from, p_to = read_month("p_from") or p_from, read_month("p_to", end=True) or p_to
    t0 = _aware(read_moment("t0")) or datetime.combine(today - timedelta(days=7), time(), UTC)
    t1 = _aware(read_moment("t1")) or datetime.now(UTC).replace(second=0, microsecond=0)
    term = request.args.get("term")
    changes = None
    try:
        if p_from <= p_to and t0 < t1:
            changes = _changes(unit, t0, t1, p_from, p_to, term)
    except ValueError as exc:
        errors.append(str(exc))
    currency = live["currency"] if live else fx.reporting_currency()
    export_args = {"unit": unit.code}
    for key, value in (("close_from", close_from), ("close_to", close_to), ("as_of", as_of)):
        if value is not None:
            export_args[key] = value.isoformat()
    if at is not None:
        export_args["at"] = at.strftime("%Y-%m-%dT%H:%M")
        export_args["basis"] = basis
    bridge_args = {
        "unit": unit.code,
        "t0": t0.astimezone(_zone()).strftime("%Y-%m-%dT%H:%M"),
        "t1": t1.astimezone(_zone()).strftime("%Y-%m-%dT%H:%M"),
        "p_from": p_from.strftime("%Y-%m"),
        "p_to": p_to.strftime("%Y-%m"),
    }
    return render_template(
        "console/finance.html",
        unit=unit,
        units=unit_choices(g.principal.scope_code),
        live=live,
        past=past,
        at=at,
        basis=basis,
        regions=regions,
        changes=changes,
        term=changes.get("term") if changes else None,
        errors=errors,
        currency=currency,
        close_from=close_from,
        close_to=close_to,
        as_of=as_of,
        bridge_args=bridge_args,
        has_at=supports_at(),
        has_changes=supports_changes(),
        export_args=export_args,
        charts=_charts(live, regions, changes, currency),
    )


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["SETTINGS"].default_timezone)


def _charts(live, regions, changes, currency) -> dict:
    if live is None:
        return {}
    fmt = f"money:{currency}"
    cats = [c for c in live["by_category"]]
    out = {
        "category": charts.bars(
            [label(CATEGORY_LABELS, c) for c in cats],
            [
                (gettext("Amount"), [float(live["by_category"][c]["amount"]) for c in cats], fmt),
                (
                    gettext("Weighted"),
                    [float(live["by_category"][c]["weighted"]) for c in cats],
                    fmt,
                ),
            ],
        ),
        "month": charts.bars(
            [gettext("No close date") if m == "none" else m for m in live["by_month"]],
            [
                (gettext("Amount"), [float(v["amount"]) for v in live["by_month"].values()], fmt),
                (
                    gettext("Weighted"),
                    [float(v["weighted"]) for v in live["by_month"].values()],
                    fmt,
                ),
            ],
        ),
        "stage": charts.bars(
            [label(STAGE_LABELS, s) for s in live["by_stage"]],
            [(gettext("Weighted"), [float(v["weighted"]) for v in live["by_stage"].values()], fmt)],
        ),
    }
    if regions:
        out["region"] = charts.bars(
            [code for code, _ in regions],
            [
                (gettext("Open amount"), [float(r["open"]["amount"]) for _, r in regions], fmt),
                (gettext("Weighted"), [float(r["open"]["weighted"]) for _, r in regions], fmt),
            ],
        )
    if changes:
        out["bridge"] = _bridge_chart(changes, currency)
    return out


@bp.get("/finance/export")
def export():
    """Download the unit's pipeline as a workbook (one sheet per view, and the deals) or CSV."""
    unit = resolve_unit(g.principal, request.args.get("unit") or g.principal.scope_code)
    close_from, close_to = read_date("close_from"), read_date("close_to")
    as_of = read_date("as_of")
    at = _aware(read_moment("at")) if supports_at() else None
    extra = {"at": at, "basis": read_basis()} if at is not None else {}
    try:
        report = pipelines.pipeline(
            g.principal, unit.code, close_from=close_from, close_to=close_to, as_of=as_of, **extra
        )
    except ValueError as exc:  # a missing rate, or a window the history cannot answer
        message = str(exc)
        return render_template(
            "console/error.html", title=gettext("The pipeline cannot be exported"), message=message
        ), 422
    stamp = report.get("at", report["rates_as_of"])[:16].replace(":", "")
    name = f"pipeline-{unit.code}-{stamp}"
    if request.args.get("format") == "csv":
        rows = [
            {"view": view, "name": key, **line}
            for view in ("by_stage", "by_category", "by_month")
            for key, line in report[view].items()
        ]
        return csv_response(rows, name)
    deals = None if at else pipelines.open_deals(g.principal, unit.code, close_from, close_to)
    return Response(
        exports.pipeline_workbook(report, deals),
        mimetype=XLSX,
        headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
    )
