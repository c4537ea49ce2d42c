"""Playbook, violations, compliance and approvals API (scoped; publishing is HQ's)."""

from __future__ import annotations

from flask import g, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate, validates_schema

from hq_server.api.auth import token_required
from hq_server.api.errors import ApiError
from hq_server.api.export import csv_response
from hq_server.api.reports import settle_period
from hq_server.bounds import day_field
from hq_server.extensions import db
from hq_server.models import User
from hq_server.services import playbooks, violations

blp = Blueprint("playbook", __name__, url_prefix="/api/v1", description="Playbook and compliance")
PUBLISHERS = {"hq_manager", "admin"}


def _who() -> str:
    if g.principal.user_id is None:
        return f"agent:{g.principal.scope_code}"
    return db.session.get(User, g.principal.user_id).username


class PeriodArgs(Schema):
    unit = fields.String(required=True)
    format_ = fields.String(data_key="format", validate=validate.OneOf(["json", "csv"]))
    from_ = day_field(data_key="from")
    to = day_field()

    @validates_schema
    def _period(self, data, **kwargs):
        settle_period(data)


class ViolationArgs(PeriodArgs):
    rule = fields.String()
    status = fields.String(validate=validate.OneOf(["open", "acknowledged", "resolved"]))


class NoteSchema(Schema):
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class DecisionSchema(NoteSchema):
    decision = fields.String(required=True, validate=validate.OneOf(["approve", "refuse"]))


def _forbidden(exc: Exception) -> ApiError:
    return ApiError(403, "forbidden", str(exc))


@blp.get("/playbooks/current")
@token_required("user", "agent")
def current_playbook():
    """Return the newest published playbook (document and source)."""
    row = playbooks.latest()
    if row is None:
        raise ApiError(404, "not_found", "no playbook has been published yet")
    return {
        "version": row.version,
        "name": row.name,
        "published_at": row.published_at.isoformat(),
        "published_by": row.published_by,
        "document": row.document,
        "source": row.source,
    }


def _hq_only() -> None:
    if g.principal.role not in PUBLISHERS:
        raise ApiError(403, "forbidden", "only HQ managers manage the playbook")


@blp.get("/playbooks")
@token_required("user")
def list_playbooks():
    """List every published version: who published it and when (HQ managers only)."""
    _hq_only()
    return {
        "versions": [
            {
                "version": row.version,
                "name": row.name,
                "rules": len(row.document.get("rules", [])),
                "published_by": row.published_by,
                "published_at": row.published_at.isoformat(),
            }
            for row in playbooks.all_versions()
        ]
    }


@blp.get("/playbooks/diff")
@token_required("user")
def diff_playbooks():
    """Show what changed between two versions (``?from=1&to=2``; default: the last two)."""
    _hq_only()
    rows = playbooks.all_versions()
    try:
        new = int(request.args.get("to") or rows[0].version)
        old = int(request.args.get("from") or (rows[1].version if len(rows) > 1 else new))
    except (IndexError, ValueError) as exc:
        raise ApiError(422, "invalid", "from and to must be published version numbers") from exc
    old_row, new_row = playbooks.get(old), playbooks.get(new)
    if old_row is None or new_row is None:
        raise ApiError(404, "not_found", f"no playbook version {old if old_row is None else new}")
    return {
        "from": old,
        "to": new,
        "diff": playbooks.diff(old_row.source, new_row.source, f"v{old}", f"v{new}"),
    }


@blp.post("/playbooks/validate")
@token_required("user")
def validate_playbook():
    """Check a playbook (YAML body) without publishing it; errors carry line numbers."""
    _hq_only()
    try:
        playbook = playbooks.validate(request.get_data(as_text=True))
    except playbooks.PublishError as exc:
        raise ApiError(422, "invalid_playbook", str(exc), {"playbook": exc.errors}) from exc
    return {"valid": True, "version": playbook.version, "rules": len(playbook.rules)}


@blp.post("/playbooks")
@token_required("user")
def publish_playbook():
    """Publish a new playbook version (YAML body); HQ managers and admins only."""
    _hq_only()
    try:
        row = playbooks.publish(request.get_data(as_text=True), _who())
    except playbooks.PublishError as exc:
        raise ApiError(422, "invalid_playbook", str(exc), {"playbook": exc.errors}) from exc
    db.session.commit()
    return {
        "version": row.version,
        "published_by": row.published_by,
        "published_at": row.published_at.isoformat(),
    }, 201


@blp.get("/violations")
@token_required("user", "agent")
@blp.arguments(ViolationArgs, location="query", as_kwargs=True)
def list_violations(unit, from_, to, rule=None, status=None, format_=None):
    """List violations under a unit (filters: rule, status, period; ``format=csv``)."""
    if format_ == "csv":
        rows = violations.list_violations(
            g.principal, unit, rule=rule, status=status, start=from_, end=to
        )
        return csv_response(rows, f"violations-{unit}-{from_}-{to}")
    return {
        "violations": violations.list_violations(
            g.principal, unit, rule=rule, status=status, start=from_, end=to
        )
    }


@blp.post("/violations/<int:violation_id>/acknowledge")
@token_required("user")
@blp.arguments(NoteSchema, as_kwargs=True)
def acknowledge_violation(violation_id, note):
    """Acknowledge a violation with a note (managers in scope)."""
    try:
        result = violations.acknowledge(g.principal, violation_id, note, _who())
    except violations.Forbidden as exc:
        raise _forbidden(exc) from exc
    db.session.commit()
    return result


@blp.get("/compliance")
@token_required("user", "agent")
@blp.arguments(PeriodArgs, location="query", as_kwargs=True)
def compliance(unit, from_, to, format_=None):
    """Per rule: events checked, in violation, and the compliance rate, under a unit."""
    if format_ == "csv":
        rows = violations.compliance(g.principal, unit, from_, to)
        return csv_response(rows, f"compliance-{unit}-{from_}-{to}")
    return {
        "unit": unit,
        "from": from_.isoformat(),
        "to": to.isoformat(),
        "rules": violations.compliance(g.principal, unit, from_, to),
    }


@blp.get("/approvals")
@token_required("user")
def list_approvals():
    """List approvals in your scope (``?status=pending|approved|refused|all``)."""
    status = request.args.get("status", "pending")
    return {
        "approvals": violations.list_approvals(g.principal, None if status == "all" else status)
    }


@blp.post("/approvals/<int:approval_id>")
@token_required("user")
@blp.arguments(DecisionSchema, as_kwargs=True)
def decide_approval(approval_id, decision, note):
    """Approve or refuse a blocked entry (the approver role its rule names, or HQ)."""
    try:
        result = violations.decide(g.principal, approval_id, decision == "approve", note, _who())
    except violations.Forbidden as exc:
        raise _forbidden(exc) from exc
    db.session.commit()
    return result
