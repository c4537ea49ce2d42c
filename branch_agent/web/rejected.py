"""The entries HQ refused: see why, then fix or discard each one."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext

from branch_agent.recorder import RecordError
from branch_agent.web.entries import build, render_form
from branch_agent.web.fields import flatten_errors
from branch_agent.web.forms import (
    FORMS,
    KIND_BY_TYPE,
    envelope_fields,
    event_values,
    label_for,
    read_values,
    to_entry,
)
from branch_agent.web.lookups import Lookups
from branch_agent.web.messages import say
from branch_agent.web.store import get_branch_tz, get_outbox

bp = Blueprint("rejected", __name__, url_prefix="/rejected")


@bp.get("/")
def index():
    """List the rejected entries with HQ's reasons."""
    outbox = get_outbox()
    rows = outbox.list(state="rejected", limit=1000)
    return render_template(
        "rejected.html", rows=rows, problems=problems, lookups=Lookups.load(outbox)
    )


@bp.route("/<int:seq>/fix", methods=("GET", "POST"))
def fix(seq: int):
    """Show a rejected entry in its form and queue the corrected one."""
    outbox = get_outbox()
    row = outbox.get(seq)
    if row is None or row["state"] != "rejected":
        flash(gettext("This entry has already been fixed or discarded."), "warn")
        return redirect(url_for(".index"))
    kind = KIND_BY_TYPE.get(row["type"], "raw")
    form, lookups, original = FORMS[kind], Lookups.load(outbox), row["body"]
    shown = {"fix_row": row, "problems": problems(row), "title": gettext("Fix the entry")}
    if request.method == "GET":
        values = event_values(form, original, get_branch_tz())
        return render_form(form, values, lookups, kind=kind, **shown)
    values = read_values(form, request.form)
    entry, errors = to_entry(form, values, lookups, type_=row["type"])
    for key in {"deal", "customer"} - envelope_fields(form):
        setattr(entry, key, original.get(key) or getattr(entry, key))  # not in this form
    try:
        event = build(outbox, entry, errors)
    except RecordError as exc:
        return render_form(form, values, lookups, kind=kind, errors=exc.errors, **shown), 422
    try:
        outbox.replace(seq, event)
    except ValueError:  # fixed or discarded meanwhile, e.g. in another tab
        flash(gettext("This entry has already been fixed or discarded."), "warn")
        return redirect(url_for(".index"))
    flash(gettext("Corrected — it will reach HQ at the next sync."), "ok")
    return redirect(url_for(".index"))


@bp.post("/<int:seq>/discard")
def discard(seq: int):
    """Discard a rejected entry so that it is never sent."""
    if get_outbox().discard(seq):
        flash(gettext("Discarded — it will not be sent to HQ."), "ok")
    else:
        flash(gettext("This entry has already been fixed or discarded."), "warn")
    return redirect(url_for(".index"))


def problems(row: dict) -> list[tuple[str, list[str]]]:
    """Return HQ's field errors for a row as (input label, messages) pairs."""
    errors = (row.get("hq_result") or {}).get("errors") or {}
    form = FORMS.get(KIND_BY_TYPE.get(row["type"], ""))
    return [
        (label_for(path, form), [say(m) for m in found])
        for path, found in flatten_errors(errors).items()
    ]
