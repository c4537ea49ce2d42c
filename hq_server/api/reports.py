"""Read API for managers and finance: metrics of any org unit, scoped by role."""

from __future__ import annotations

from datetime import date, timedelta

from flask import g
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from hq_server.api.auth import token_required
from hq_server.api.export import csv_response
from hq_server.bounds import day_field
from hq_server.services import reports

blp = Blueprint("reports", __name__, url_prefix="/api/v1", description="Reports")
MAX_PERIOD_DAYS = 3660


def settle_period(data: dict) -> tuple[date, date]:
    """Fill in a query's default period (the 30 days to ``to``, which defaults to today)
    and check its order; return ``(from, to)``."""
    end = data.setdefault("to", date.today())
    start = data.setdefault("from_", end - timedelta(days=29))
    if start > end:
        raise ValidationError("must not be after 'to'", "from")
    return start, end


class FunnelArgsSchema(Schema):
    unit = fields.String(required=True, metadata={"description": "org unit code, e.g. EAST"})
    format_ = fields.String(data_key="format", validate=validate.OneOf(["json", "csv"]))
    from_ = day_field(data_key="from", metadata={"description": "first day (default: to − 29)"})
    to = day_field(metadata={"description": "last day, inclusive (default: today)"})

    @validates_schema
    def _period(self, data, **kwargs):
        start, end = settle_period(data)
        if (end - start).days > MAX_PERIOD_DAYS:
            raise ValidationError(f"a period spans at most {MAX_PERIOD_DAYS} days", "from")


class StageSchema(Schema):
    stage = fields.String()
    reached = fields.Integer()
    next_stage = fields.String(allow_none=True)
    conversion_to_next = fields.Float(allow_none=True)


class FunnelSchema(Schema):
    unit = fields.Dict()
    period = fields.Dict()
    flow = fields.Dict(metadata={"description": "period conversion; mixes cohorts"})
    cohort = fields.Dict(
        metadata={
            "description": "deals opened in the period and the "
            "stages they ever reached (lost included)"
        }
    )
    closed = fields.Dict(metadata={"description": "deals closed in the period; win rate"})
    activity = fields.Dict(keys=fields.String(), values=fields.Float())


@blp.get("/funnel")
@token_required("user", "agent")
@blp.arguments(FunnelArgsSchema, location="query", as_kwargs=True)
@blp.response(200, FunnelSchema)
def funnel(unit, from_, to, format_=None):
    """Return the cohort funnel, win rate and activity of a unit's subtree."""
    result = reports.funnel(g.principal, unit, from_, to)
    if format_ == "csv":
        return csv_response(result["cohort"]["stages"], f"funnel-{unit}-{from_}-{to}")
    result["period"] = {
        "from": result["period"]["from"].isoformat(),
        "to": result["period"]["to"].isoformat(),
    }
    return result


class MetricsArgsSchema(FunnelArgsSchema):
    by = fields.String(
        load_default="branch",
        validate=validate.OneOf(["region", "branch", "rep"]),
        metadata={"description": "one row per region, branch or rep under the unit"},
    )
    offset = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0),
        metadata={"description": "rows to skip (rows are in node-code order)"},
    )
    limit = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1, max=10_000),
        metadata={"description": "rows to return (default: all); see paging.total"},
    )


@blp.get("/metrics")
@token_required("user", "agent")
@blp.arguments(MetricsArgsSchema, location="query", as_kwargs=True)
def metrics(unit, from_, to, by, offset, limit, format_=None):
    """Return KPIs per region, branch or rep under a unit (``format=csv`` for a download)."""
    result = reports.metrics_by(g.principal, unit, from_, to, by, offset=offset, limit=limit)
    if format_ == "csv":
        return csv_response(result["rows"], f"metrics-{unit}-{by}-{from_}-{to}")
    return result
