"""Event types and their marshmallow schemas: the sync contract's payload.

An event is an immutable fact made by a branch agent. ``EventSchema`` checks
the envelope; ``DATA_SCHEMAS`` maps each type to the schema of its ``data``.
``load_event`` runs both and returns the loaded event or marshmallow's error
dict (``{"field": ["message"]}``, ``data`` errors nested under ``"data"``).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from shared.fastpath import compile_schema
from shared.protocol import NUL_MESSAGE
from shared.stages import FORECAST_CATEGORIES

LIFECYCLE_STATES = ("unidentified", "potential", "opportunity", "order_customer", "user")
MAX_TEXT = 500
CODE = validate.Length(min=1, max=64)
TEXT = validate.Length(max=MAX_TEXT)


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _amount(**kwargs: Any) -> fields.Decimal:
    return fields.Decimal(
        places=2, as_string=False, validate=validate.Range(min=0, max=10**13), **kwargs
    )


def _currency(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(r"^[A-Z]{3}$", error="ISO 4217 code, e.g. CNY"), **kwargs
    )


class CompetitorSchema(_Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    product = fields.String(validate=TEXT)
    price = _amount()


class LeadCreatedSchema(_Strict):
    source = fields.String(required=True, validate=validate.Length(min=1, max=100))
    campaign = fields.String(validate=validate.Length(max=100))
    score = fields.Integer(validate=validate.Range(min=0, max=100))
    lifecycle = fields.String(validate=validate.OneOf(LIFECYCLE_STATES))


class LeadAssignedSchema(_Strict):
    to_rep = fields.String(required=True, validate=CODE)


class LeadRecycledSchema(_Strict):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=MAX_TEXT))


class CallLoggedSchema(_Strict):
    connected = fields.Boolean(required=True)
    reached_decision_maker = fields.Boolean(load_default=False)
    presented = fields.Boolean(load_default=False)
    outcome = fields.String(validate=TEXT)
    duration_s = fields.Integer(validate=validate.Range(min=0, max=86400))


class VisitLoggedSchema(_Strict):
    decision_maker_met = fields.Boolean(required=True)
    outcome = fields.String(validate=TEXT)
    next_step = fields.String(validate=TEXT)


class QuoteIssuedSchema(_Strict):
    amount = _amount(required=True)
    currency = _currency(required=True)
    discount_pct = fields.Decimal(places=2, validate=validate.Range(min=0, max=100))
    products = fields.List(fields.String(validate=validate.Length(min=1, max=200)))
    competitor = fields.Nested(CompetitorSchema)


class DealOpenedSchema(_Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    amount = _amount(required=True)
    currency = _currency(required=True)
    expected_close = fields.Date()
    stage = fields.String(validate=CODE)


class DealStageChangedSchema(_Strict):
    from_ = fields.String(data_key="from", validate=CODE)
    to = fields.String(required=True, validate=CODE)


class DealUpdatedSchema(_Strict):
    amount = _amount()
    currency = _currency()
    expected_close = fields.Date()
    forecast_category = fields.String(validate=validate.OneOf(FORECAST_CATEGORIES))

    @validates_schema
    def _something_changed(self, data: dict, **kwargs: Any) -> None:
        if not data:
            raise ValidationError("name at least one changed field", "_schema")


class DealWonSchema(_Strict):
    amount = _amount()
    currency = _currency()


class DealLostSchema(_Strict):
    loss_reason = fields.String(validate=TEXT)
    competitor = fields.Nested(CompetitorSchema)


class PaymentFailedSchema(_Strict):
    amount = _amount(required=True)
    currency = _currency(required=True)
    reason = fields.String(validate=TEXT)


DATA_SCHEMAS: dict[str, Schema] = {
    "lead.created": LeadCreatedSchema(),
    "lead.assigned": LeadAssignedSchema(),
    "lead.recycled": LeadRecycledSchema(),
    "call.logged": CallLoggedSchema(),
    "visit.logged": VisitLoggedSchema(),
    "quote.issued": QuoteIssuedSchema(),
    "deal.opened": DealOpenedSchema(),
    "deal.stage_changed": DealStageChangedSchema(),
    "deal.updated": DealUpdatedSchema(),
    "deal.won": DealWonSchema(),
    "deal.lost": DealLostSchema(),
    "payment.failed": PaymentFailedSchema(),
}

EVENT_TYPES = tuple(DATA_SCHEMAS)

# A lead is a deal in its first stage, so lead events name the deal id too.
DEAL_REQUIRED = frozenset(t for t in EVENT_TYPES if t.startswith(("lead.", "deal.", "quote.")))

# UTC offsets in use run from -12:00 to +14:00.
_MIN_OFFSET = timedelta(hours=-12)
_MAX_OFFSET = timedelta(hours=14)
# When an event may have happened: a day in every time zone (Python's dates end in 9999),
# after 1970-01-01, the day the rollups keep the open deals' counters on (CURRENT_DAY).
_EARLIEST = datetime(1971, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)
MAX_INT4 = 2**31 - 1  # what an integer column holds


class EventSchema(_Strict):
    """The envelope every event shares."""

    id = fields.UUID(required=True)
    seq = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=2**62)
    )  # = protocol.MAX_SEQ
    type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    occurred_at = fields.AwareDateTime(required=True)
    rep = fields.String(required=True, validate=CODE)
    deal = fields.UUID()
    customer = fields.String(validate=validate.Length(min=1, max=100))
    data = fields.Dict(load_default=dict)  # checked by the type's own schema
    playbook_version = fields.Integer(strict=True, validate=validate.Range(min=0, max=MAX_INT4))

    @validates_schema
    def _check_envelope(self, event: dict, **kwargs: Any) -> None:
        at = event.get("occurred_at")
        offset = at.utcoffset() if at is not None else None
        if offset is not None and not _MIN_OFFSET <= offset <= _MAX_OFFSET:
            raise ValidationError("UTC offset must be between -12:00 and +14:00", "occurred_at")
        if at is not None and not _EARLIEST <= at <= _LATEST:
            raise ValidationError(
                f"must be between {_EARLIEST:%Y-%m-%d} and {_LATEST:%Y-%m-%d} (UTC)", "occurred_at"
            )
        if event.get("type") in DEAL_REQUIRED and "deal" not in event:
            raise ValidationError(f"required for {event['type']} events", "deal")


ENVELOPE = EventSchema()
# The same schemas compiled to msgspec types (``shared.fastpath``): a well-formed
# event loads through them at a fraction of the cost; anything else takes marshmallow.
_FAST_ENVELOPE = compile_schema(ENVELOPE)
_FAST_DATA = {type_: compile_schema(schema) for type_, schema in DATA_SCHEMAS.items()}


def load_event(raw: Any) -> tuple[dict | None, dict | None]:
    """Validate one raw event; return ``(event, None)`` or ``(None, errors)``.

    A well-formed event that holds the NUL character in a text is refused too, naming
    the field: PostgreSQL stores no NUL in text or JSON, so HQ could not keep it.
    """
    if not isinstance(raw, dict):
        return None, {"_schema": ["an event must be a JSON object"]}
    event = _fast_load(raw)
    if event is None:
        event, errors = load_with_marshmallow(raw)
        if errors:
            return None, errors
    errors = nul_errors(raw)
    return (None, errors) if errors else (event, None)


def nul_errors(value: Any) -> dict | None:
    """Return ``{"field": [NUL_MESSAGE]}`` (nested as the value is) for every text of
    ``value`` holding U+0000, or None. Encoded JSON shows one as ``\\u0000``: a value
    without that text is passed at the cost of one encoding."""
    try:
        if b"\\u0000" not in orjson.dumps(value):
            return None
    except TypeError:  # not plain JSON (a caller's own values): look at every text
        pass
    return _nul_paths(value)


def _nul_paths(value: Any) -> Any:
    if isinstance(value, str):
        return [NUL_MESSAGE] if "\x00" in value else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    found = {key: err for key, item in items if (err := _nul_paths(item))}
    return found or None


def load_with_marshmallow(raw: dict) -> tuple[dict | None, dict | None]:
    """``load_event`` through the marshmallow schemas only: the reference the fast path meets
    (``load_event`` then applies the NUL rule to what either path loaded)."""
    try:
        event = ENVELOPE.load(raw)
    except ValidationError as exc:
        errors = exc.normalized_messages()
        type_ = raw.get("type")
        schema = DATA_SCHEMAS.get(type_) if isinstance(type_, str) else None  # [] is unhashable
        if schema is not None and isinstance(raw.get("data"), dict) and "data" not in errors:
            data_errors = schema.validate(raw["data"])  # name every bad field at once
            if data_errors:
                errors["data"] = data_errors
        return None, errors
    try:
        event["data"] = DATA_SCHEMAS[event["type"]].load(event["data"])
    except ValidationError as exc:
        return None, {"data": exc.normalized_messages()}
    return event, None


def _fast_load(raw: dict) -> dict | None:
    """Load ``raw`` through the compiled schemas; None when marshmallow must decide."""
    event = _FAST_ENVELOPE.load(raw) if _FAST_ENVELOPE else None
    fast_data = _FAST_DATA[event["type"]] if event else None  # the type is one of them
    data = fast_data.load(event["data"]) if fast_data else None
    if data is None:
        return None
    event["data"] = data
    return event


def canonical_json(raw: dict) -> bytes:
    """Return an event as canonical JSON: keys sorted, no spaces."""
    return orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)


def content_hash(raw: dict) -> bytes:
    """Hash an event's canonical JSON: the same fact always hashes the same."""
    return hash_canonical(canonical_json(raw))


def hash_canonical(canonical: bytes) -> bytes:
    """``content_hash`` of the event whose ``canonical_json`` is ``canonical``."""
    return hashlib.sha256(canonical).digest()
