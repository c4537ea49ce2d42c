"""The playbook in force, its versions and their differences; HQ checks and publishes here."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext

from hq_server.extensions import db
from hq_server.services import playbooks

bp = Blueprint("playbook", __name__)
PUBLISHERS = {"hq_manager", "admin"}


def _diff_lines(text: str) -> list[tuple[str, str]]:
    """Return each line of a unified diff with its kind: add, del, hunk or same."""
    out = []
    for line in text.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        out.append((kind, line))
    return out


def _versions_to_compare(rows) -> tuple[int | None, int | None]:
    try:
        new = int(request.args.get("to") or rows[0].version)
        old = int(request.args.get("from") or (rows[1].version if len(rows) > 1 else new))
    except (IndexError, ValueError):
        return None, None
    return old, new


def _render(*, source: str | None = None, errors: list | None = None, status: int = 200):
    current = playbooks.latest()
    publisher = g.user.role in PUBLISHERS
    rows, diff, old, new = [], [], None, None
    if publisher:
        rows = playbooks.all_versions()
        old, new = _versions_to_compare(rows)
        old_row = playbooks.get(old) if old is not None else None
        new_row = playbooks.get(new) if new is not None else None
        if old_row is not None and new_row is not None and old != new:
            diff = _diff_lines(playbooks.diff(old_row.source, new_row.source, f"v{old}", f"v{new}"))
    page_ = render_template(
        "console/playbook.html",
        current=current,
        document=current.document if current else None,
        publisher=publisher,
        versions=rows,
        diff=diff,
        old=old,
        new=new,
        source=source,
        errors=errors or [],
    )
    return page_, status


@bp.get("/playbook")
def page():
    """Show the playbook in force: stages and rules; for HQ, every version and a diff."""
    return _render()


@bp.post("/playbook")
def publish():
    """Check a playbook (YAML) and, when asked to, publish it as the new version (HQ)."""
    if g.user.role not in PUBLISHERS:
        abort(403)
    source = request.form.get("source", "")
    try:
        checked = playbooks.validate(source)
        if request.form.get("action") == "publish":
            row = playbooks.publish(source, g.user.username)
            db.session.commit()
            flash(gettext("Version %(v)d is published.", v=row.version), "ok")
            return redirect(url_for("console.playbook.page"))
    except playbooks.PublishError as exc:
        db.session.rollback()
        return _render(source=source, errors=exc.errors or [{"message": str(exc)}], status=422)
    message = gettext(
        "The playbook is valid: version %(v)d, %(n)d rules.",
        v=checked.version,
        n=len(checked.rules),
    )
    flash(message, "ok")
    return _render(source=source)
