"""A fast path for well-formed events: msgspec types compiled from the marshmallow schemas.

The marshmallow schemas in ``shared.events`` stay the contract: a rule is written
there only, they document the API and they name every bad field. Running 500
events a push through them costs more than storing the events, so each schema
is also compiled, once, into a msgspec type that checks the same shapes and
bounds in C:

* strings, integers, booleans and UUIDs become msgspec types, with the fields'
  ``Length``, ``Range``, ``OneOf`` and ``Regexp`` validators as msgspec
  constraints;
* values msgspec would parse differently (decimals, dates, datetimes) are taken
  as they come and finished by the marshmallow field's own ``deserialize``
  (its parsing, rounding and validators); a plain datetime field, on every
  event, is parsed by the function its format names, without the call chain,
  and hands anything that does not parse so to the field;
* the schema's ``@validates_schema`` hooks run on the result.

An event the fast type refuses goes through marshmallow, which decides and
gives the messages, so the fast path can only be slower to say yes: it never
says yes where marshmallow says no (``tests/unit/test_fastpath.py`` holds it to
that and to giving the same values). A schema holding anything this module
does not know compiles to ``None`` and always takes the marshmallow path.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
from marshmallow import RAISE, Schema, ValidationError, fields, validate
from marshmallow.decorators import POST_LOAD, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA
from marshmallow.utils import missing

_PLAIN: dict[type, type] = {
    fields.String: str,
    fields.UUID: uuid.UUID,
    fields.Integer: int,
    fields.Boolean: bool,
}
# Parsed by the marshmallow field itself: msgspec's own parsing of these differs.
_BY_FIELD = (fields.Decimal, fields.Date, fields.DateTime, fields.AwareDateTime)


class Unsupported(TypeError):
    """The schema holds a field, validator or hook the fast path does not reproduce."""


class FastSchema:
    """One marshmallow schema compiled: ``load`` returns its result, or None to defer."""

    def __init__(self, schema: Schema):
        self.schema = schema
        if schema.unknown != RAISE:
            raise Unsupported(f"unknown={schema.unknown}")
        self._finishers: list[tuple[str, Callable[[Any], Any]]] = []  # fields parsed in Python
        self._optional: list[str] = []  # fields without a default: absent, not in the result
        specs = [self._field_spec(name, f) for name, f in schema.load_fields.items()]
        self.type = msgspec.defstruct(
            f"Fast{type(schema).__name__}",
            specs,
            kw_only=True,
            forbid_unknown_fields=True,
        )
        self._checks = self._schema_checks(schema)

    def load(self, raw: Any) -> dict | None:
        """Return what ``schema.load(raw)`` returns, or None when only marshmallow can tell."""
        try:
            return self._finished(msgspec.convert(raw, self.type))
        except (msgspec.ValidationError, ValidationError):
            return None

    def _finished(self, struct: msgspec.Struct) -> dict:
        out = msgspec.structs.asdict(struct)  # in C; fields left out are UNSET
        for attr in self._optional:
            if out[attr] is msgspec.UNSET:
                del out[attr]
        for attr, finish in self._finishers:
            if attr in out:
                out[attr] = finish(out[attr])
        for check in self._checks:
            check(out)
        return out

    def _field_spec(self, attr: str, field: fields.Field) -> tuple:
        typ, finish = self._type_of(field)
        if field.allow_none:
            typ = typ | None
        if field.required:
            spec = msgspec.field(name=field.data_key or attr)
        elif field.load_default is missing:
            spec = msgspec.field(name=field.data_key or attr, default=msgspec.UNSET)
            typ = typ | msgspec.UnsetType
            self._optional.append(attr)
        elif callable(field.load_default):
            spec = msgspec.field(name=field.data_key or attr, default_factory=field.load_default)
        else:
            spec = msgspec.field(name=field.data_key or attr, default=field.load_default)
        if finish is not None:
            self._finishers.append((attr, finish))
        return (attr, typ, spec)

    def _type_of(self, field: fields.Field) -> tuple[Any, Callable[[Any], Any] | None]:
        kind = type(field)
        if kind in _BY_FIELD:
            # Any JSON value (null too): the field parses and validates it as marshmallow would.
            return Any, _iso_datetime(field) or field.deserialize
        if kind in _PLAIN:
            return _constrained(_PLAIN[kind], field), None
        if field.validators:
            raise Unsupported(f"validators on {kind.__name__}")
        if kind is fields.Dict and field.key_field is None and field.value_field is None:
            return dict, None
        if kind is fields.Raw:
            return Any, None if field.allow_none else _not_null
        if kind is fields.List:
            inner, finish = self._type_of(field.inner)
            if finish is None:
                return list[inner], None
            return list[inner], lambda items: None if items is None else [finish(i) for i in items]
        if kind is fields.Nested and not field.many and isinstance(field.nested, type | Schema):
            nested = FastSchema(field.schema)
            return nested.type, lambda struct: None if struct is None else nested._finished(struct)
        raise Unsupported(f"no fast type for {kind.__name__}")

    @staticmethod
    def _schema_checks(schema: Schema) -> list[Callable[[dict], None]]:
        hooks = schema._hooks  # marshmallow's registry of decorated methods
        if hooks[PRE_LOAD] or hooks[POST_LOAD] or hooks[VALIDATES]:
            raise Unsupported("load hooks")
        checks = []
        for attr_name, many, options in hooks[VALIDATES_SCHEMA]:
            if many or options.get("pass_original") or options.get("pass_collection"):
                raise Unsupported(f"schema hook {attr_name} with options")
            method = getattr(schema, attr_name)
            checks.append(lambda data, method=method: method(data, partial=None, many=False))
        return checks


def _iso_datetime(field: fields.Field) -> Callable[[Any], Any] | None:
    """``field.deserialize`` of a plain datetime field, without marshmallow's call chain.

    Such a field parses text with the function its format names (``DESERIALIZATION_FUNCS``)
    and an aware one insists on an offset. Text that parses so is returned as the field
    would return it; anything else (bad text, no offset, not text) goes to the field,
    which decides and names the error. One such field is on every event.
    """
    if type(field) not in (fields.DateTime, fields.AwareDateTime) or field.validators:
        return None
    parse = field.DESERIALIZATION_FUNCS.get(field.format or field.DEFAULT_FORMAT)
    if parse is None:
        return None
    aware = type(field) is fields.AwareDateTime

    def finish(value: Any) -> Any:
        if type(value) is str:
            try:
                parsed = parse(value)
            except (TypeError, AttributeError, ValueError):
                parsed = None
            if parsed is not None and (not aware or parsed.utcoffset() is not None):
                return parsed
        return field.deserialize(value)

    return finish


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValidationError("Field may not be null.")
    return value


def _constrained(base: type, field: fields.Field) -> Any:
    """``base`` with the field's validators as msgspec constraints."""
    meta: dict[str, Any] = {}
    typ: Any = base
    for v in field.validators:
        if isinstance(v, validate.Length) and base is str:
            meta.update(_length(v))
        elif isinstance(v, validate.Range) and base is int:
            meta.update(_range(v))
        elif isinstance(v, validate.OneOf) and base is str and typ is str:
            choices = tuple(v.choices)
            if not all(isinstance(c, str) for c in choices):
                raise Unsupported("OneOf with non-string choices")
            typ = Literal[choices]
        elif isinstance(v, validate.Regexp) and base is str and not v.regex.flags & ~re.UNICODE:
            # marshmallow matches at the start (re.match); msgspec searches.
            meta["pattern"] = f"^(?:{v.regex.pattern})"
        else:
            raise Unsupported(f"validator {type(v).__name__} on {base.__name__}")
    if meta and typ is not base:
        raise Unsupported("OneOf together with other constraints")
    return Annotated[typ, msgspec.Meta(**meta)] if meta else typ


def _length(v: validate.Length) -> dict[str, int]:
    if v.equal is not None:
        return {"min_length": v.equal, "max_length": v.equal}
    bounds = {"min_length": v.min, "max_length": v.max}
    return {k: n for k, n in bounds.items() if n is not None}


def _range(v: validate.Range) -> dict[str, Any]:
    bounds = {
        "ge" if v.min_inclusive else "gt": v.min,
        "le" if v.max_inclusive else "lt": v.max,
    }
    return {k: n for k, n in bounds.items() if n is not None}


def compile_schema(schema: Schema) -> FastSchema | None:
    """Return the fast twin of ``schema``, or None if it holds something not reproduced."""
    try:
        return FastSchema(schema)
    except Unsupported:
        return None
