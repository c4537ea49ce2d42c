"""The staff forms: which inputs each has and how they become an event."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, tzinfo

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from werkzeug.datastructures import MultiDict

from branch_agent.web.fields import ENVELOPE, Entry, Field, format_value, parse_value, value_at
from branch_agent.web.lookups import Lookups


@dataclass(frozen=True)
class Form:
    """A form that records one event type."""

    type_: str
    title: LazyString
    fields: tuple[Field, ...]


REP = Field("rep", _l("Sales rep"), "select", "rep", options="reps", required=True)
CUSTOMER = Field("customer", _l("Customer"), path="customer")
DEAL = Field(
    "deal", _l("Deal"), "select", "deal", options="deals", hint=_l("Leave empty if there is none.")
)
DEAL_NEEDED = replace(DEAL, required=True, hint=None)
WHEN = Field("occurred_at", _l("When"), "datetime", "occurred_at", required=True)
OUTCOME = Field("outcome", _l("Outcome"), path="data.outcome")
AMOUNT = Field("amount", _l("Amount"), "amount", "data.amount", required=True)
CURRENCY = Field(
    "currency", _l("Currency"), "currency", "data.currency", required=True, default="CNY"
)

FORMS: dict[str, Form] = {
    "visit": Form(
        "visit.logged",
        _l("Log a visit"),
        (
            REP,
            CUSTOMER,
            DEAL,
            Field(
                "decision_maker_met",
                _l("Met the decision maker"),
                "checkbox",
                "data.decision_maker_met",
            ),
            OUTCOME,
            Field("next_step", _l("Next step"), path="data.next_step"),
            WHEN,
        ),
    ),
    "call": Form(
        "call.logged",
        _l("Log a call"),
        (
            REP,
            CUSTOMER,
            DEAL,
            Field("connected", _l("Got through"), "checkbox", "data.connected"),
            Field(
                "reached_decision_maker",
                _l("Spoke to the decision maker"),
                "checkbox",
                "data.reached_decision_maker",
            ),
            Field("presented", _l("Presented our offer"), "checkbox", "data.presented"),
            OUTCOME,
            Field("duration", _l("Duration (minutes)"), "minutes", "data.duration_s"),
            WHEN,
        ),
    ),
    "quote": Form(
        "quote.issued",
        _l("Issue a quote"),
        (
            REP,
            DEAL_NEEDED,
            AMOUNT,
            CURRENCY,
            Field("discount_pct", _l("Discount (%)"), "percent", "data.discount_pct"),
            Field(
                "products",
                _l("Products"),
                "list",
                "data.products",
                hint=_l("Separate several products with commas."),
            ),
            Field(
                "competitor_name",
                _l("Competitor"),
                path="data.competitor.name",
                hint=_l("Only if a competitor also quoted."),
            ),
            Field("competitor_product", _l("Competitor's product"), path="data.competitor.product"),
            Field("competitor_price", _l("Competitor's price"), "amount", "data.competitor.price"),
            WHEN,
        ),
    ),
    "deal_open": Form(
        "deal.opened",
        _l("Open a new deal"),
        (
            REP,
            Field("name", _l("Deal name"), path="data.name", required=True),
            CUSTOMER,
            AMOUNT,
            CURRENCY,
            Field("expected_close", _l("Expected close date"), "date", "data.expected_close"),
            Field("stage", _l("Stage"), "select", "data.stage", options="stages"),
            WHEN,
        ),
    ),
    "deal_stage": Form(
        "deal.stage_changed",
        _l("Move a deal to another stage"),
        (
            REP,
            DEAL_NEEDED,
            Field("to", _l("New stage"), "select", "data.to", options="stages", required=True),
            WHEN,
        ),
    ),
    "deal_won": Form(
        "deal.won",
        _l("Mark a deal as won"),
        (
            REP,
            DEAL_NEEDED,
            replace(AMOUNT, label=_l("Final amount"), required=False),
            replace(CURRENCY, required=False),
            WHEN,
        ),
    ),
    "deal_lost": Form(
        "deal.lost",
        _l("Mark a deal as lost"),
        (
            REP,
            DEAL_NEEDED,
            Field("loss_reason", _l("Why it was lost"), path="data.loss_reason"),
            Field("competitor", _l("Competitor who won it"), path="data.competitor.name"),
            WHEN,
        ),
    ),
    # Any other type is fixed by editing its data as JSON.
    "raw": Form(
        "",
        _l("Fix the entry"),
        (
            REP,
            Field("data", _l("Details (JSON)"), "json", "data", required=True),
            WHEN,
        ),
    ),
}

KIND_BY_TYPE = {form.type_: kind for kind, form in FORMS.items() if form.type_}

# Activity on a deal names the deal's customer when the person did not.
CUSTOMER_FROM_DEAL = ("visit.logged", "call.logged", "quote.issued")

OTHER_LABELS = {
    "rep": _l("Sales rep"),
    "deal": _l("Deal"),
    "customer": _l("Customer"),
    "occurred_at": _l("When"),
    "data": _l("Details"),
    "data.competitor": _l("Competitor"),
    "data.from": _l("Previous stage"),
    "data.loss_reason": _l("Why it was lost"),
    "_schema": _l("Entry"),
}


def label_for(path: str, form: Form | None = None) -> str:
    """Return the label of the input an error path belongs to (else the path).

    The inputs of ``form`` name it first: a won deal's amount is its "Final amount".
    """
    labels = {f.path: f.label for f in form.fields} if form else {}
    for other in FORMS.values():
        for f in other.fields:
            labels.setdefault(f.path, f.label)
    labels = labels | OTHER_LABELS
    keys = path.split(".")
    while keys:  # "data.products.0" is labelled as "data.products"
        label = labels.get(".".join(keys))
        if label is not None:
            return str(label)
        keys.pop()
    return path


def read_values(form: Form, posted: MultiDict) -> dict[str, str | bool]:
    """Return the submitted value of each input, as typed."""
    return {
        f.name: (f.name in posted) if f.widget == "checkbox" else posted.get(f.name, "")
        for f in form.fields
    }


def initial_values(form: Form, lookups: Lookups, tz: tzinfo, rep: str = "") -> dict:
    """Return the values a blank form starts with."""
    values: dict[str, str | bool] = {f.name: f.default for f in form.fields}
    values["rep"] = rep if rep in lookups.reps or not lookups.reps else ""
    values["occurred_at"] = datetime.now(tz).strftime("%Y-%m-%dT%H:%M")
    for f in form.fields:
        if f.options == "stages" and not f.required and lookups.stages:
            values[f.name] = lookups.stages[0]  # a new deal starts in the first stage
    return values


def event_values(form: Form, event: dict, tz: tzinfo) -> dict:
    """Return the values that show ``event`` in ``form``."""
    return {f.name: format_value(f.widget, value_at(event, f.path), tz) for f in form.fields}


def to_entry(form: Form, values: dict, lookups: Lookups, type_: str = "") -> tuple[Entry, dict]:
    """Return the entry the values describe and the errors of unreadable inputs."""
    entry, errors = Entry(type_ or form.type_), {}
    for f in form.fields:
        try:
            value = parse_value(f.widget, values.get(f.name))
        except ValueError as exc:
            _nest(errors, f.path, str(exc))
            continue
        if value is not None:
            entry.place(f.path, value)
    if entry.type_ == "deal.won" and "amount" not in entry.data:
        entry.data.pop("currency", None)  # a currency alone says nothing
    if entry.type_ in CUSTOMER_FROM_DEAL and not entry.customer:
        entry.customer = lookups.customer_of(entry.deal)
    return entry, errors


def envelope_fields(form: Form) -> set[str]:
    """Return the envelope keys (rep, deal, ...) the form lets a person change."""
    return {f.path for f in form.fields if f.path in ENVELOPE}


def _nest(errors: dict, path: str, message: str) -> None:
    *parents, last = path.split(".")
    for key in parents:
        errors = errors.setdefault(key, {})
    errors.setdefault(last, []).append(message)
