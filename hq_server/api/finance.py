"""Finance API: the live pipeline of any unit, exchange rates, spreadsheet downloads."""

from __future__ import annotations

from datetime import date

from flask import Response, g
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from hq_server.api.auth import token_required
from hq_server.api.errors import ApiError
from hq_server.api.export import csv_response
from hq_server.extensions import db
from hq_server.services import exports, fx
from hq_server.services import pipeline as pipelines

blp = Blueprint("finance", __name__, url_prefix="/api/v1", description="Finance")
RATE_SETTERS = {"finance", "hq_manager", "admin"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class PipelineArgs(Schema):
    unit = fields.String(required=True)
    close_from = fields.Date(metadata={"description": "expected close on or after"})
    close_to = fields.Date(metadata={"description": "expected close on or before"})
    as_of = fields.Date(metadata={"description": "date of the exchange rates (default today)"})
    format_ = fields.String(data_key="format", validate=validate.OneOf(["json", "csv", "xlsx"]))


class RateSchema(Schema):
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z]{3}$"))
    day = fields.Date(required=True)
    rate = fields.Decimal(required=True, places=8)
    source = fields.String(load_default="", validate=validate.Length(max=100))


@blp.get("/pipeline")
@token_required("user")
@blp.arguments(PipelineArgs, location="query", as_kwargs=True)
def pipeline(unit, close_from=None, close_to=None, as_of=None, format_=None):
    """Open, weighted and forecast-category pipeline of a unit (``format=csv|xlsx``)."""
    try:
        report = pipelines.pipeline(
            g.principal, unit, close_from=close_from, close_to=close_to, as_of=as_of
        )
    except fx.FxError as exc:
        raise ApiError(422, "missing_rate", str(exc)) from exc
    name = f"pipeline-{unit}-{report['rates_as_of']}"
    if format_ == "csv":
        rows = [
            {"view": view, "name": key, **line}
            for view in ("by_stage", "by_category", "by_month")
            for key, line in report[view].items()
        ]
        return csv_response(rows, name)
    if format_ == "xlsx":
        deals = pipelines.open_deals(g.principal, unit, close_from, close_to)
        return Response(
            exports.pipeline_workbook(report, deals),
            mimetype=XLSX,
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    return report


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
