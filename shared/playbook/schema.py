"""The playbook document's shape: types, required keys, allowed values, no unknown keys.

This is the syntax check. What the values mean (conditions compile, paths
exist, ids are unique, one won stage) is checked in ``shared.playbook.build``.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from shared.events import EVENT_TYPES
from shared.playbook.calendar import WEEKDAYS, zone
from shared.playbook.expr import MAX_LENGTH
from shared.playbook.model import APPROVERS, SEVERITIES
from shared.playbook.timers import PERIODS
from shared.stages import FORECAST_CATEGORIES

RULE_ID = r"[a-z0-9][a-z0-9_.-]{0,63}"
NAME = r"[a-z][a-z0-9_]{0,63}"
UNIT_CODE = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
MAX_MESSAGE = 500


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _event_type(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.OneOf(EVENT_TYPES, error="unknown event type {input}"), **kwargs
    )


def _condition(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=MAX_LENGTH), **kwargs)


def _one_of(choices: tuple[str, ...], **kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.OneOf(choices, error="must be one of: {choices}"), **kwargs
    )


def _timezone(name: str) -> None:
    try:
        zone(name)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _hours_in_order(hours: list[str]) -> None:
    if len(hours) == 2 and hours[0] >= hours[1]:
        raise ValidationError("working hours must start before they end")


class KeyedMap(fields.Field):
    """A mapping of names to values; errors are keyed by the name, like a nested schema."""

    def __init__(self, values: fields.Field, key_pattern: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.values = values
        self.key_pattern = re.compile(key_pattern)

    def _bind_to_schema(self, field_name: str, parent: Any) -> None:
        super()._bind_to_schema(field_name, parent)
        self.values = copy.deepcopy(self.values)
        self.values._bind_to_schema(field_name, self)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict:
        if not isinstance(value, dict):
            raise ValidationError("must be a mapping")
        out, errors = {}, {}
        for key, item in value.items():
            if not isinstance(key, str) or not self.key_pattern.fullmatch(key):
                errors[key] = [f"{key!r} is not a valid name"]
                continue
            try:
                out[key] = self.values.deserialize(item)
            except ValidationError as exc:
                errors[key] = exc.messages
        if errors:
            raise ValidationError(errors)
        return out


class StageSchema(_Strict):
    name = fields.String(required=True, validate=validate.Regexp(NAME, error="use a-z, 0-9, _"))
    order = fields.Integer(required=True, strict=True)
    probability = fields.Float(required=True, validate=validate.Range(min=0, max=1))
    forecast_category = _one_of(FORECAST_CATEGORIES, required=True)
    won = fields.Boolean(load_default=False)
    lost = fields.Boolean(load_default=False)


class CalendarSchema(_Strict):
    timezone = fields.String(validate=_timezone)
    workdays = fields.List(_one_of(WEEKDAYS), validate=validate.Length(min=1))
    hours = fields.List(
        fields.String(
            validate=validate.Regexp(r"([01]\d|2[0-3]):[0-5]\d", error='write times as "09:00"')
        ),
        validate=[validate.Length(equal=2, error="give [start, end]"), _hours_in_order],
    )
    holidays = fields.List(fields.Date())
    extra_workdays = fields.List(fields.Date())

    @validates_schema
    def _no_day_twice(self, data: dict, **kwargs: Any) -> None:
        both = set(data.get("holidays", ())) & set(data.get("extra_workdays", ()))
        if both:
            days = ", ".join(sorted(d.isoformat() for d in both))
            raise ValidationError(f"both a holiday and a working day: {days}", "extra_workdays")


class MessageSchema(_Strict):
    zh = fields.String(required=True, validate=validate.Length(min=1, max=MAX_MESSAGE))
    en = fields.String(required=True, validate=validate.Length(min=1, max=MAX_MESSAGE))


class TypedSchema(_Strict):
    type = _event_type(required=True)
    condition = _condition()


class StopSchema(_Strict):
    types = fields.List(_event_type(), required=True, validate=validate.Length(min=1))
    condition = _condition()


class WithinSchema(_Strict):
    working_hours = fields.Float(validate=validate.Range(min=0, min_inclusive=False, max=10000))
    hours = fields.Float(validate=validate.Range(min=0, min_inclusive=False, max=10000))

    @validates_schema
    def _exactly_one(self, data: dict, **kwargs: Any) -> None:
        if len(data) != 1:
            raise ValidationError("give exactly one of working_hours or hours")


class RuleSchema(_Strict):
    id = fields.String(
        required=True, validate=validate.Regexp(RULE_ID, error="use a-z, 0-9, - _ .")
    )
    kind = fields.String(required=True)
    severity = _one_of(SEVERITIES, load_default="warn")
    message = fields.Nested(MessageSchema, required=True)


class EventRuleSchema(RuleSchema):
    applies_to = fields.List(_event_type(), required=True, validate=validate.Length(min=1))


class RequiresPriorSchema(EventRuleSchema):
    prior = fields.Nested(TypedSchema, required=True)
    when = _condition()


class RequiredFieldsSchema(EventRuleSchema):
    paths = fields.List(
        fields.String(), required=True, validate=validate.Length(min=1), data_key="fields"
    )
    when = _condition()


class ThresholdSchema(EventRuleSchema):
    condition = _condition(required=True)


class ApprovalSchema(ThresholdSchema):
    severity = _one_of(SEVERITIES, load_default="block")
    approver = _one_of(APPROVERS, required=True)


class SlaSchema(RuleSchema):
    start = fields.Nested(TypedSchema, required=True)
    stop = fields.Nested(StopSchema, required=True)
    within = fields.Nested(WithinSchema, required=True)


class QuotaSchema(RuleSchema):
    event = fields.Nested(TypedSchema, required=True)
    per = _one_of(("rep", "branch"), load_default="rep")
    period = _one_of(PERIODS, required=True)
    minimum = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1), data_key="min"
    )


class StallSchema(RuleSchema):
    days = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=3650))
    stages = fields.List(fields.String(), validate=validate.Length(min=1))


RULE_SCHEMAS: dict[str, Schema] = {
    "requires_prior": RequiresPriorSchema(),
    "required_fields": RequiredFieldsSchema(),
    "threshold": ThresholdSchema(),
    "approval": ApprovalSchema(),
    "sla": SlaSchema(),
    "quota": QuotaSchema(),
    "stall": StallSchema(),
}


def load_rule(raw: Any) -> dict[str, Any]:
    """Check one rule by the schema of its ``kind``; raise ``ValidationError`` if it is wrong."""
    if not isinstance(raw, dict):
        raise ValidationError("a rule must be a mapping")
    kind = raw.get("kind")
    schema = RULE_SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None:
        known = ", ".join(RULE_SCHEMAS)
        problem = "Missing data for required field." if kind is None else None
        raise ValidationError({"kind": [problem or f"unknown rule kind {kind!r}; use {known}"]})
    return schema.load(raw)


class PlaybookSchema(_Strict):
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    stages = fields.List(fields.Nested(StageSchema), required=True, validate=validate.Length(min=2))
    definitions = KeyedMap(_condition(), NAME, load_default=dict)
    calendars = KeyedMap(fields.Nested(CalendarSchema), UNIT_CODE, load_default=dict)
    rules = fields.List(fields.Raw(), load_default=list)  # each by load_rule


PLAYBOOK_SCHEMA = PlaybookSchema()
