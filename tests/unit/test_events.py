"""Event schemas: every type loads, bad envelopes and data are refused with field errors."""

from __future__ import annotations

import pytest

from shared.events import DATA_SCHEMAS, NUL_MESSAGE, content_hash, load_event
from tests.samples import VALID_DATA, sample_event


def test_every_type_has_an_example():
    assert set(VALID_DATA) == set(DATA_SCHEMAS)


@pytest.mark.parametrize("type_", sorted(DATA_SCHEMAS))
def test_every_event_type_loads(type_):
    event, errors = load_event(sample_event(type_))
    assert errors is None
    assert event["type"] == type_


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"occurred_at": "2026-11-22T10:15:00"}, "occurred_at"),
        ({"occurred_at": "2026-11-22T10:15:00+14:30"}, "occurred_at"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"id": "not-a-uuid"}, "id"),
        ({"seq": 0}, "seq"),
        ({"seq": "5"}, "seq"),
        ({"type": "deal.exploded"}, "type"),
        ({"rep": ""}, "rep"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_envelopes_name_the_field(changes, field):
    event, errors = load_event(sample_event("call.logged", **changes))
    assert event is None
    assert field in errors


@pytest.mark.parametrize("type_", [[], {}, ["call.logged"]])
def test_a_type_that_is_not_a_string_is_refused_not_raised(type_):
    # A list or object as the type used to raise while looking up its data schema.
    event, errors = load_event(sample_event("call.logged", type=type_))
    assert event is None
    assert "type" in errors


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"playbook_version": 2**31}, "playbook_version"),  # beyond an integer column
        ({"occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at"),  # before year 1 in UTC
        ({"occurred_at": "9999-12-31T20:00:00-12:00"}, "occurred_at"),  # after 9999 in UTC
        ({"occurred_at": "1970-01-01T12:00:00+00:00"}, "occurred_at"),  # the rollups' "now" day
    ],
)
def test_values_hq_could_not_store_or_place_name_the_field(changes, field):
    event, errors = load_event(sample_event("call.logged", **changes))
    assert event is None
    assert field in errors


def test_the_earliest_and_latest_moments_load():
    for at in ("1971-01-01T00:00:00+00:00", "9999-12-29T11:00:00-12:00"):
        assert load_event(sample_event("call.logged", occurred_at=at))[1] is None


@pytest.mark.parametrize(
    "type_,changes,errors",
    [
        ("call.logged", {"customer": "Acme\x00"}, {"customer": [NUL_MESSAGE]}),
        (
            "visit.logged",
            {"data": {"decision_maker_met": True, "outcome": "a\x00b"}},
            {"data": {"outcome": [NUL_MESSAGE]}},
        ),
        (
            "quote.issued",
            {"data": {**VALID_DATA["quote.issued"], "products": ["ok", "\x00"]}},
            {"data": {"products": {1: [NUL_MESSAGE]}}},
        ),
        (
            "quote.issued",
            {"data": {**VALID_DATA["quote.issued"], "competitor": {"name": "R\x00"}}},
            {"data": {"competitor": {"name": [NUL_MESSAGE]}}},
        ),
    ],
)
def test_a_text_holding_the_nul_character_is_refused_by_name(type_, changes, errors):
    # PostgreSQL keeps no NUL in text or JSON: such an event could not be stored, and
    # failed the whole push that carried it.
    assert load_event(sample_event(type_, **changes)) == (None, errors)


def test_a_backslash_and_u0000_as_plain_text_is_kept():
    event, errors = load_event(sample_event("call.logged", customer="C:\\u0000 Ltd"))
    assert errors is None and event["customer"] == "C:\\u0000 Ltd"


def test_deal_events_need_a_deal():
    raw = sample_event("deal.won")
    del raw["deal"]
    assert load_event(raw)[1] == {"deal": ["required for deal.won events"]}


@pytest.mark.parametrize(
    "type_,data,field",
    [
        ("quote.issued", {"amount": -1, "currency": "CNY"}, "amount"),
        ("quote.issued", {"amount": 1, "currency": "rmb"}, "currency"),
        ("quote.issued", {"amount": 1, "currency": "CNY", "discount_pct": 150}, "discount_pct"),
        ("call.logged", {}, "connected"),
        ("deal.updated", {}, "_schema"),
        ("deal.opened", {"name": "x", "amount": 1, "currency": "CNY", "colour": "red"}, "colour"),
        ("lead.created", {"source": "web", "lifecycle": "alien"}, "lifecycle"),
    ],
)
def test_bad_data_is_nested_under_data(type_, data, field):
    _, errors = load_event(sample_event(type_, data=data))
    assert field in errors["data"]


def test_the_content_hash_ignores_key_order_but_not_values():
    raw = sample_event("deal.won")
    reordered = dict(reversed(list(raw.items())))
    assert content_hash(raw) == content_hash(reordered)
    assert content_hash(raw) != content_hash({**raw, "data": {"amount": 1}})
