"""Inbox: alerts and pending approvals; acknowledging flags and violations; deciding approvals."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext

from hq_server.extensions import db
from hq_server.services import flags, notify, violations
from hq_server.web.auth import safe_next
from hq_server.web.units import can_decide

bp = Blueprint("inbox", __name__)
NOTE_MAX = 2000


def _note() -> str:
    return request.form.get("note", "").strip()[:NOTE_MAX]


def _back():
    return redirect(safe_next(request.form.get("next"), url_for("console.inbox.page")))


@bp.get("/inbox")
def page():
    """Your notifications, newest first, and the approvals waiting in your scope."""
    box = notify.inbox(g.user.id, limit=100)
    return render_template(
        "console/inbox.html",
        notifications=box["notifications"],
        unread=box["unread"],
        approvals=violations.list_approvals(g.principal, "pending"),
        can_decide=can_decide,
    )


@bp.post("/inbox/read")
def mark_read():
    """Mark your notifications read (all of them, or the ids sent)."""
    ids = [int(i) for i in request.form.getlist("id") if i.isdigit()]
    if not ids:
        ids = [
            n["id"] for n in notify.inbox(g.user.id, unread_only=True, limit=500)["notifications"]
        ]
    marked = notify.mark_read(g.user.id, ids)
    db.session.commit()
    flash(gettext("%(n)d notifications marked read.", n=marked), "ok")
    return _back()


@bp.post("/flags/<int:flag_id>/acknowledge")
def acknowledge_flag(flag_id: int):
    """Acknowledge a lagging flag with a note (managers in scope)."""
    flags.acknowledge(g.principal, flag_id, _note(), g.user.username)
    db.session.commit()
    flash(gettext("The flag is acknowledged."), "ok")
    return _back()


@bp.post("/violations/<int:violation_id>/acknowledge")
def acknowledge_violation(violation_id: int):
    """Acknowledge a rule violation with a note (managers in scope)."""
    violations.acknowledge(g.principal, violation_id, _note(), g.user.username)
    db.session.commit()
    flash(gettext("The violation is acknowledged."), "ok")
    return _back()


@bp.post("/approvals/<int:approval_id>")
def decide(approval_id: int):
    """Approve or refuse a blocked entry (the approver role its rule names, or HQ)."""
    decision = request.form.get("decision")
    if decision not in ("approve", "refuse"):
        flash(gettext("Choose approve or refuse."), "warn")
        return _back()
    try:
        violations.decide(g.principal, approval_id, decision == "approve", _note(), g.user.username)
    except violations.Forbidden as exc:
        db.session.rollback()
        if str(exc).startswith("already"):
            flash(gettext("Someone decided this entry already."), "warn")
            return _back()
        raise
    db.session.commit()
    if decision == "approve":
        flash(gettext("Approved: the entry now counts."), "ok")
    else:
        flash(gettext("Refused: the branch sees it at its next sync."), "ok")
    return _back()
