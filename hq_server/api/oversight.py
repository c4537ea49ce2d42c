"""Oversight API: lagging flags with reasons, acknowledgements, tiers; scoped by role."""

from __future__ import annotations

from datetime import date

from flask import g
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from hq_server.api.auth import token_required
from hq_server.api.errors import ApiError
from hq_server.api.export import csv_response
from hq_server.api.playbook import NoteSchema, PeriodArgs, _who
from hq_server.bounds import day_field
from hq_server.extensions import db
from hq_server.services import flags, lagging, targets

blp = Blueprint("oversight", __name__, url_prefix="/api/v1", description="Lagging and tiers")
SCANNERS = {"hq_manager", "admin"}


class FlagArgs(PeriodArgs):
    status = fields.String(validate=validate.OneOf(["open", "acknowledged", "resolved"]))


@blp.get("/lagging")
@token_required("user")
@blp.arguments(FlagArgs, location="query", as_kwargs=True)
def list_flags(unit, from_, to, status=None, format_=None):
    """List lagging flags under a unit, each with its reason in numbers (``format=csv``)."""
    rows = flags.list_flags(g.principal, unit, status=status, start=from_, end=to)
    if format_ == "csv":
        return csv_response(rows, f"lagging-{unit}-{from_}-{to}")
    return {"flags": rows}


@blp.get("/lagging/<int:flag_id>")
@token_required("user")
def get_flag(flag_id):
    """Return one flag."""
    return flags.flag_dict(flags.get_flag(g.principal, flag_id))


@blp.post("/lagging/<int:flag_id>/acknowledge")
@token_required("user")
@blp.arguments(NoteSchema, as_kwargs=True)
def acknowledge_flag(flag_id, note):
    """Acknowledge a flag with a note (managers in scope)."""
    try:
        result = flags.acknowledge(g.principal, flag_id, note, _who())
    except flags.Forbidden as exc:
        raise ApiError(403, "forbidden", str(exc)) from exc
    db.session.commit()
    return result


@blp.post("/lagging/scan")
@token_required("user")
def scan_now():
    """Run the lagging scan now (HQ roles); it also runs hourly on the workers."""
    if g.principal.role not in SCANNERS:
        raise ApiError(403, "forbidden", "only HQ runs a scan on demand")
    found = lagging.scan_lagging()
    db.session.commit()
    return {"flags": found}


@blp.get("/tiers")
@token_required("user")
@blp.arguments(PeriodArgs, location="query", as_kwargs=True)
def tiers(unit, from_, to, format_=None):
    """Rank the unit's children into top 25 % / middle 50 % / bottom 25 % per KPI."""
    result = flags.tiers(g.principal, unit, from_, to)
    if format_ == "csv":
        rows = [
            {"node": node, **{kpi: result["tiers"][kpi].get(node) for kpi in result["tiers"]}}
            for node in sorted({n for t in result["tiers"].values() for n in t})
        ]
        return csv_response(rows, f"tiers-{unit}-{from_}-{to}")
    return result


class TargetSchema(Schema):
    unit = fields.String(required=True)
    metric = fields.String(required=True, validate=validate.OneOf(targets.METRICS))
    period = fields.String(required=True, validate=validate.OneOf(["year", "quarter", "month"]))
    start = day_field(required=True, metadata={"description": "first day of the period"})
    value = fields.Float(required=True, validate=validate.Range(min=0))
    distribution = fields.List(
        fields.Float(validate=validate.Range(min=0)),
        metadata={"description": "percent per month, sums to 100"},
    )


@blp.post("/targets")
@token_required("user")
@blp.arguments(TargetSchema, as_kwargs=True)
def set_target(unit, metric, period, start, value, distribution=None):
    """Set a unit's target for a year, quarter or month, phased by month (HQ roles)."""
    if g.principal.role not in SCANNERS:
        raise ApiError(403, "forbidden", "only HQ sets targets")
    try:
        result = targets.set_target(unit, metric, period, start, value, distribution, _who())
    except targets.TargetError as exc:
        raise ApiError(422, "invalid", str(exc)) from exc
    db.session.commit()
    return result, 201


@blp.get("/targets")
@token_required("user")
@blp.arguments(PeriodArgs, location="query", as_kwargs=True)
def target_report(unit, from_, to, format_=None):
    """Return the unit's targets for the window: phased target, achieved, attainment, run rate."""
    result = targets.report(g.principal, unit, from_, to, date.today())
    if format_ == "csv":
        return csv_response(result["targets"], f"targets-{unit}-{from_}-{to}")
    return result
