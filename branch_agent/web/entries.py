"""Pages that record a visit, a call, a quote or a deal change."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from branch_agent.outbox import Outbox
from branch_agent.recorder import RecordError, build_event, record
from branch_agent.web.fields import Entry, flatten_errors, merge_errors
from branch_agent.web.forms import FORMS, Form, initial_values, label_for, read_values, to_entry
from branch_agent.web.i18n import current_language
from branch_agent.web.lookups import Lookups
from branch_agent.web.messages import say
from branch_agent.web.store import get_branch_tz, get_outbox

bp = Blueprint("entries", __name__)

DEAL_TABS = (
    ("open", _l("New deal")),
    ("stage", _l("Change stage")),
    ("won", _l("Won")),
    ("lost", _l("Lost")),
)


@bp.route("/visit", methods=("GET", "POST"))
def visit():
    """Log a visit to a customer."""
    return _entry_page("visit")


@bp.route("/call", methods=("GET", "POST"))
def call():
    """Log a phone call."""
    return _entry_page("call")


@bp.route("/quote", methods=("GET", "POST"))
def quote():
    """Record a quote sent to a customer."""
    return _entry_page("quote")


@bp.route("/deal", defaults={"action": "open"}, methods=("GET", "POST"))
@bp.route("/deal/<action>", methods=("GET", "POST"))
def deal(action: str):
    """Open a deal, move it to another stage, or close it as won or lost."""
    if action not in dict(DEAL_TABS):
        abort(404)
    return _entry_page(f"deal_{action}")


def _entry_page(kind: str):
    outbox, form = get_outbox(), FORMS[kind]
    lookups = Lookups.load(outbox)
    if request.method == "GET":
        values = initial_values(form, lookups, get_branch_tz(), session.get("rep", ""))
        return render_form(form, values, lookups, kind=kind)
    values = read_values(form, request.form)
    entry, errors = to_entry(form, values, lookups)
    try:
        if errors:
            build(outbox, entry, errors)  # raises, adding what the schemas say
        recorded = record(outbox, entry.type_, entry.rep, entry.data, **entry_kwargs(entry))
    except RecordError as exc:
        return render_form(form, values, lookups, kind=kind, errors=exc.errors), 422
    session["rep"] = entry.rep
    flash(gettext("Saved — it will reach HQ at the next sync."), "ok")
    for verdict in recorded.verdicts:
        # The playbook's own wording, in the page's language; the entry is kept either way.
        language = "zh" if current_language() == "zh_CN" else "en"
        flash(verdict["message"].get(language) or verdict["message"]["en"], "warn")
    return redirect(url_for("home.index"))


def entry_kwargs(entry: Entry) -> dict:
    """Return the keyword arguments of ``build_event`` for ``entry``."""
    return {"deal": entry.deal, "customer": entry.customer, "occurred_at": entry.occurred_at}


def build(outbox: Outbox, entry: Entry, errors: dict | None = None) -> dict:
    """Return the checked event; raise ``RecordError`` naming every bad input at once."""
    try:
        event = build_event(outbox, entry.type_, entry.rep, entry.data, **entry_kwargs(entry))
    except RecordError as exc:
        raise RecordError(merge_errors(errors or {}, exc.errors)) from None
    if errors:
        raise RecordError(errors)
    return event


def render_form(
    form: Form, values: dict, lookups: Lookups, *, kind: str, errors: dict | None = None, **extra
) -> str:
    """Render ``form`` with its values, choices, and each error next to its input."""
    flat, claimed, rows = flatten_errors(errors or {}), set(), []
    for f in form.fields:
        messages = []
        for path, found in flat.items():
            if path == f.path or path.startswith(f.path + "."):
                messages.extend(say(m) for m in found)
                claimed.add(path)
        value = values.get(f.name, "")
        options = lookups.options(f.options, str(value)) if f.widget == "select" else []
        rows.append({"f": f, "value": value, "options": options, "errors": messages})
    others = [
        (label_for(path, form), [say(m) for m in found])
        for path, found in flat.items()
        if path not in claimed
    ]
    return render_template(
        "entry.html",
        form=form,
        rows=rows,
        others=others,
        has_errors=bool(flat),
        tabs=DEAL_TABS if kind.startswith("deal_") and "fix_row" not in extra else (),
        tab=kind.removeprefix("deal_"),
        **extra,
    )
