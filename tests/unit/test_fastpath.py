"""The compiled fast path never accepts what marshmallow refuses, and loads the same values."""

from __future__ import annotations

import copy
import uuid
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields, pre_load, validate

from shared import events
from shared.events import (
    DATA_SCHEMAS,
    ENVELOPE,
    load_event,
    load_with_marshmallow,
    nul_errors,
)
from shared.fastpath import compile_schema
from shared.protocol import PushRequestSchema
from tests.samples import ENVELOPE_KEYS, full_event

UUID = "6f1c2a54-8a1e-4d3b-9a55-0d3c2f6e9b11"
# Values near every edge the schemas draw: lengths, ranges, formats, types JSON can carry.
TRICKY = [
    None,
    True,
    False,
    0,
    1,
    -1,
    100,
    101,
    86400,
    86401,
    2**62,
    2**62 + 1,
    2**70,
    2**31 - 1,
    2**31,
    1.0,
    1.5,
    0.005,
    -0.001,
    1e20,
    float("nan"),
    10**13,
    10**13 + 0.004,
    99.999,
    "",
    "x",
    "\x00",
    "a\x00b",
    "x" * 64,
    "x" * 65,
    "x" * 100,
    "x" * 101,
    "x" * 200,
    "x" * 201,
    "x" * 500,
    "x" * 501,
    "1",
    "1.5",
    "NaN",
    "Infinity",
    "1e3",
    "true",
    "yes",
    "0",
    "CNY",
    "cny",
    "CNY\n",
    "EURO",
    "lead",
    "visit",
    "won",
    "commit",
    "potential",
    "2026-11-22T10:15:00+08:00",
    "2026-11-22T10:15:00",
    "2026-11-22 10:15:00Z",
    "2026-11-22T10:15:00.123456+08:00",
    "2026-11-22T10:15:00.1234567+08:00",
    "2026-11-22T10:15:00+15:00",
    "2026-11-22T10:15:00-12:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T20:00:00-12:00",
    "1970-01-01T12:00:00+00:00",
    "1971-01-01T00:00:00+00:00",
    "2026-11-22T10:15+05:30",
    "20261122T101500Z",
    "2026-11-22",
    "2026-02-30",
    "2027-01-31T00:00:00",
    UUID,
    UUID.upper(),
    UUID.replace("-", ""),
    "{" + UUID + "}",
    "urn:uuid:" + UUID,
    UUID[:-1],
    [],
    ["GTX Pro"],
    [""],
    ["x" * 201],
    [1],
    {},
    {"name": "Rival"},
    {"name": ""},
    {"name": "Rival", "price": "-1"},
    {"name": "Rival", "extra": 1},
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
values = st.one_of(st.sampled_from(TRICKY), st.sampled_from(TRICKY), json_values)


@st.composite
def mutated_events(draw) -> dict:
    """A valid event of a random type with a few envelope and data fields changed."""
    type_ = draw(st.sampled_from(sorted(DATA_SCHEMAS)))
    raw = full_event(type_)
    data_keys = [f.data_key or name for name, f in DATA_SCHEMAS[type_].load_fields.items()]
    for _ in range(draw(st.integers(0, 2))):
        where = draw(st.sampled_from(["envelope", "data"]))
        target, keys = (raw, ENVELOPE_KEYS) if where == "envelope" else (raw.get("data"), data_keys)
        if not isinstance(target, dict):
            continue
        key = draw(st.sampled_from([*keys, "unknown"]))
        if draw(st.booleans()) and key in target:
            del target[key]
        else:
            target[key] = copy.deepcopy(draw(values))  # TRICKY's lists and dicts are shared
    return raw


def _shape(value):
    """Value with its exact type and form: Decimal('1.0') is not Decimal('1.00') here."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if isinstance(value, datetime):
        return ("datetime", value.isoformat(), value.utcoffset())
    if isinstance(value, Decimal | date | uuid.UUID):
        return (type(value).__name__, str(value))
    return (type(value).__name__, value)


def test_every_schema_compiles():
    # Were one of them to fall back for good, pushes would quietly slow down.
    assert compile_schema(ENVELOPE) is not None
    assert {t: compile_schema(s) is not None for t, s in DATA_SCHEMAS.items()} == dict.fromkeys(
        DATA_SCHEMAS, True
    )


@pytest.mark.parametrize("type_", sorted(DATA_SCHEMAS))
def test_valid_events_take_the_fast_path_and_load_the_same(type_):
    raw = full_event(type_)
    fast = events._fast_load(copy.deepcopy(raw))
    assert fast is not None
    assert _shape(fast) == _shape(load_with_marshmallow(copy.deepcopy(raw))[0])


def _agree(raw: dict) -> bool:
    """Check one event both ways; return whether the fast path took it."""
    fast = events._fast_load(copy.deepcopy(raw))
    reference, errors = load_with_marshmallow(copy.deepcopy(raw))
    if fast is not None:
        assert errors is None, f"fast path accepted {raw!r}; marshmallow: {errors}"
        assert _shape(fast) == _shape(reference)
    return fast is not None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_events())
def test_fast_path_says_yes_only_where_marshmallow_does(raw):
    _agree(raw)
    # And load_event answers what marshmallow answers, whichever path it took, with the NUL
    # rule applied to what loads.
    reference, errors = load_with_marshmallow(copy.deepcopy(raw))
    if errors is None and nul_errors(raw):
        reference, errors = None, nul_errors(raw)
    event, event_errors = load_event(copy.deepcopy(raw))
    assert event_errors == errors
    assert _shape(event) == _shape(reference)


@pytest.mark.parametrize("type_", sorted(DATA_SCHEMAS))
def test_every_field_at_every_edge(type_):
    # Each field of the envelope and of the type's data, set to each edge value or left out.
    data_keys = [f.data_key or name for name, f in DATA_SCHEMAS[type_].load_fields.items()]
    taken = 0
    for where, keys in (
        ("envelope", [*ENVELOPE_KEYS, "unknown"]),
        ("data", [*data_keys, "unknown"]),
    ):
        for key in keys:
            for value in [*TRICKY, _MISSING]:
                raw = full_event(type_)
                target = raw if where == "envelope" else raw["data"]
                if value is _MISSING:
                    target.pop(key, None)
                else:
                    target[key] = copy.deepcopy(value)
                taken += _agree(raw)
    assert taken > 0


_MISSING = object()


PUSH_BODIES = [
    {"agent": {"id": "a1", "version": "1.2"}, "events": [{"id": "x"}, 1, "e"]},
    {"agent": {"id": "a1"}, "events": []},
    {"agent": {"id": "a1", "version": None}, "events": []},
    {"agent": {"id": ""}, "events": []},
    {"agent": {"id": "x" * 101}, "events": []},
    {"agent": {"id": "a1", "extra": 1}, "events": []},
    {"agent": {"id": "a1"}, "events": [None]},
    {"agent": {"id": "a1"}, "events": {"0": {}}},
    {"agent": {"id": "a1"}, "events": None},
    {"agent": {"id": "a1"}},
    {"agent": "a1", "events": []},
    {"agent": {"id": "a1"}, "events": [], "more": True},
    {"events": []},
]


@pytest.mark.parametrize("body", PUSH_BODIES)
def test_push_bodies_load_as_marshmallow_loads_them(body):
    schema = PushRequestSchema()
    fast = compile_schema(schema)
    assert fast is not None
    loaded = fast.load(copy.deepcopy(body))
    try:
        reference = schema.load(copy.deepcopy(body))
    except ValidationError:
        assert loaded is None
    else:
        if loaded is not None:
            assert _shape(loaded) == _shape(reference)


def test_well_formed_push_bodies_take_the_fast_path():
    assert compile_schema(PushRequestSchema()).load(PUSH_BODIES[0]) is not None


class _WithEmail(Schema):
    address = fields.String(validate=validate.Email())


class _WithPreLoad(Schema):
    name = fields.String()

    @pre_load
    def _strip(self, data, **kwargs):
        return data


class _Excluding(Schema):
    class Meta:
        unknown = "exclude"

    name = fields.String()


@pytest.mark.parametrize("schema", [_WithEmail(), _WithPreLoad(), _Excluding()])
def test_what_it_cannot_reproduce_stays_with_marshmallow(schema):
    assert compile_schema(schema) is None
