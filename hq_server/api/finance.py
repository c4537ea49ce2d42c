"""Finance API: the live pipeline of any unit, exchange rates, spreadsheet downloads."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import Response, current_app, g, url_for
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from hq_server.api.auth import token_required
from hq_server.api.errors import ApiError
from hq_server.api.export import csv_response
from hq_server.bounds import day_field, moment_field
from hq_server.extensions import db
from hq_server.services import export_jobs, exports, fx
from hq_server.services import pipeline as pipelines
from hq_server.services.pipeline_history import WindowError

blp = Blueprint("finance", __name__, url_prefix="/api/v1", description="Finance")
RATE_SETTERS = {"finance", "hq_manager", "admin"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class PipelineArgs(Schema):
    unit = fields.String(required=True)
    close_from = day_field(metadata={"description": "expected close on or after"})
    close_to = day_field(metadata={"description": "expected close on or before"})
    as_of = day_field(metadata={"description": "date of the exchange rates (default today)"})
    at = moment_field(
        metadata={
            "description": "a past moment: the pipeline as HQ knew it then (whole-month "
            "windows; without an offset the company's time zone)"
        }
    )
    basis = fields.String(
        load_default="applied",
        validate=validate.OneOf(["applied", "occurred"]),
        metadata={
            "description": "with at: 'applied' (default) = what HQ had stored by then, from "
            "the history (fast); 'occurred' = what had happened by then, late events "
            "included, replayed from the events (slower)"
        },
    )
    format_ = fields.String(data_key="format", validate=validate.OneOf(["json", "csv", "xlsx"]))


MOMENT = "without an offset, the company's time zone"


class ChangesArgs(Schema):
    unit = fields.String(required=True)
    from_ = moment_field(data_key="from", required=True, metadata={"description": MOMENT})
    to = moment_field(metadata={"description": f"default now; {MOMENT}"})
    close_from = day_field(required=True, metadata={"description": "first day of the period"})
    close_to = day_field(required=True, metadata={"description": "last day of the period"})
    term = fields.String(
        validate=validate.OneOf(pipelines.TERMS),
        metadata={"description": "list the deals behind this term"},
    )
    format_ = fields.String(data_key="format", validate=validate.OneOf(["json", "csv"]))


class ExportRequest(Schema):
    kind = fields.String(load_default="pipeline", validate=validate.OneOf(export_jobs.KINDS))
    unit = fields.String(required=True)
    close_from = day_field()
    close_to = day_field()
    at = moment_field(metadata={"description": MOMENT})
    format_ = fields.String(
        data_key="format", load_default="xlsx", validate=validate.OneOf(export_jobs.FORMATS)
    )


def _moment(value: datetime | None) -> datetime | None:
    """Read a moment without an offset in the company's time zone."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(current_app.config["SETTINGS"].default_timezone))


class RateSchema(Schema):
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z]{3}$"))
    day = day_field(required=True)
    rate = fields.Decimal(required=True, places=8)
    source = fields.String(load_default="", validate=validate.Length(max=100))


@blp.get("/pipeline")
@token_required("user")
@blp.arguments(PipelineArgs, location="query", as_kwargs=True)
def pipeline(
    unit, close_from=None, close_to=None, as_of=None, at=None, basis="applied", format_=None
):
    """Open, weighted and forecast-category pipeline of a unit, now or ``at`` a past moment.

    ``format=csv|xlsx`` downloads it (for a large unit, ``POST /exports`` builds the
    workbook in the background).
    """
    at = _moment(at)
    try:
        report = pipelines.pipeline(
            g.principal,
            unit,
            close_from=close_from,
            close_to=close_to,
            as_of=as_of,
            at=at,
            basis=basis,
        )
    except fx.FxError as exc:
        raise ApiError(422, "missing_rate", str(exc)) from exc
    except WindowError as exc:
        raise ApiError(422, "invalid_window", str(exc)) from exc
    name = f"pipeline-{unit}-{report.get('at', report['rates_as_of'])[:19].replace(':', '')}"
    if format_ == "csv":
        rows = [
            {"view": view, "name": key, **line}
            for view in ("by_stage", "by_category", "by_month")
            for key, line in report[view].items()
        ]
        return csv_response(rows, name)
    if format_ == "xlsx":
        deals = None if at else pipelines.open_deals(g.principal, unit, close_from, close_to)
        return Response(
            exports.pipeline_workbook(report, deals),
            mimetype=XLSX,
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    return report


@blp.get("/pipeline/changes")
@token_required("user")
@blp.arguments(ChangesArgs, location="query", as_kwargs=True)
def pipeline_changes(unit, from_, close_from, close_to, to=None, term=None, format_=None):
    """How the open pipeline closing in a period moved between two moments.

    start + new + pulled_in + increased − decreased − pushed_out − won − lost = end, in
    count and amount; ``term=`` lists the deals behind one term; ``slipped`` names deals
    whose expected close was pushed later, and how many times.
    """
    t0, t1 = _moment(from_), _moment(to) or datetime.now(ZoneInfo("UTC"))
    try:
        report = pipelines.changes(g.principal, unit, t0, t1, close_from, close_to, term=term)
    except fx.FxError as exc:
        raise ApiError(422, "missing_rate", str(exc)) from exc
    except WindowError as exc:
        raise ApiError(422, "invalid_window", str(exc)) from exc
    if format_ == "csv":
        if term:
            return csv_response(report["deals"], f"pipeline-changes-{unit}-{term}")
        rows = [{"term": name, **line} for name, line in report["terms"].items()]
        return csv_response(rows, f"pipeline-changes-{unit}")
    return report


@blp.post("/exports")
@token_required("user")
@blp.arguments(ExportRequest, as_kwargs=True)
def request_export(kind, unit, format_, close_from=None, close_to=None, at=None):
    """Build a spreadsheet in the background; poll the returned ``status_url``."""
    at = _moment(at)
    params = {
        "unit": unit,
        "format": format_,
        "close_from": close_from and close_from.isoformat(),
        "close_to": close_to and close_to.isoformat(),
        "at": at and at.isoformat(),
    }
    job = export_jobs.request(g.principal, params)
    db.session.commit()
    body = export_jobs.describe(job, None)
    body["status_url"] = url_for("finance.export_status", export_id=job.id)
    return body, 202


@blp.get("/exports/<uuid:export_id>")
@token_required("user")
def export_status(export_id: uuid.UUID):
    """Status of one of the caller's exports, with its download link once built."""
    job = export_jobs.find(g.principal, export_id)
    if job is None:
        raise ApiError(404, "not_found", "no such export")
    return export_jobs.describe(job, url_for("finance.export_download", export_id=job.id))


@blp.get("/exports/<uuid:export_id>/download")
@token_required("user")
def export_download(export_id: uuid.UUID):
    """Download a built export (only the user who asked for it)."""
    job = export_jobs.find(g.principal, export_id)
    if job is None:
        raise ApiError(404, "not_found", "no such export")
    if job.status != "done":
        raise ApiError(409, "not_ready", f"the export is {job.status}")
    return Response(
        job.content,
        mimetype=job.mimetype,
        headers={"Content-Disposition": f'attachment; filename="{job.filename}"'},
    )


@blp.get("/fx")
@token_required("user")
def rates():
    """Return the latest rate of each currency (into the reporting currency)."""
    table = fx.rates_as_of(date.today())
    return {
        "currency": fx.reporting_currency(),
        "rates": {
            c: {"rate": str(r["rate"]), "day": r["day"].isoformat() if r["day"] else None}
            for c, r in table.items()
        },
    }


@blp.post("/fx")
@token_required("user")
@blp.arguments(RateSchema, as_kwargs=True)
def set_rate(currency, day, rate, source):
    """Record a day's exchange rate (finance, HQ)."""
    if g.principal.role not in RATE_SETTERS:
        raise ApiError(403, "forbidden", "only finance and HQ set exchange rates")
    try:
        result = fx.set_rate(currency, day, rate, source)
    except fx.FxError as exc:
        raise ApiError(422, "invalid", str(exc)) from exc
    db.session.commit()
    return result, 201
