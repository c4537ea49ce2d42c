"""The deal projection gives the same state whatever order events are folded in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hq_server.metrics.projection import apply_event, event_texts, new_deal
from shared.events import load_event

START = datetime(2026, 11, 2, tzinfo=UTC)
DATA = {
    "deal.opened": st.fixed_dictionaries(
        {
            "name": st.just("d"),
            "amount": st.integers(0, 999),
            "currency": st.sampled_from(["CNY", "USD"]),
        }
    ),
    "deal.stage_changed": st.fixed_dictionaries(
        {"to": st.sampled_from(["lead", "visit", "quote", "won", "lost"])}
    ),
    "deal.updated": st.fixed_dictionaries({"amount": st.integers(0, 999)}),
    "deal.won": st.fixed_dictionaries({}),
    "deal.lost": st.fixed_dictionaries({"loss_reason": st.sampled_from(["price", "timing"])}),
    "visit.logged": st.fixed_dictionaries({"decision_maker_met": st.booleans()}),
    "quote.issued": st.fixed_dictionaries(
        {"amount": st.integers(0, 999), "currency": st.just("CNY")}
    ),
}


@st.composite
def events(draw):
    kind = draw(st.sampled_from(sorted(DATA)))
    raw = {
        "id": str(draw(st.uuids())),
        "seq": 1,
        "type": kind,
        "rep": "R1",
        "deal": "00000000-0000-0000-0000-000000000001",
        "occurred_at": (START + timedelta(hours=draw(st.integers(0, 48)))).isoformat(),
        "data": draw(DATA[kind]),
    }
    event, errors = load_event(raw)
    assert errors is None
    event["rep_id"] = 1
    return event


def _fold(evs):
    state = new_deal(uuid.UUID(int=1), 1)
    for ev in evs:
        apply_event(state, ev)
    return state


@given(st.lists(events(), min_size=1, max_size=12, unique_by=lambda e: e["id"]), st.randoms())
def test_any_arrival_order_gives_the_same_deal(evs, rnd):
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    assert _fold(shuffled) == _fold(evs)


def test_a_later_stage_change_wins_and_reaching_a_stage_implies_earlier_ones():
    opened = {
        "id": uuid.uuid4(),
        "type": "deal.opened",
        "rep_id": 1,
        "occurred_at": START,
        "data": {"name": "d", "amount": 5, "currency": "CNY"},
    }
    quoted = {
        "id": uuid.uuid4(),
        "type": "deal.stage_changed",
        "rep_id": 1,
        "occurred_at": START + timedelta(days=1),
        "data": {"to": "quote"},
    }
    lost = {
        "id": uuid.uuid4(),
        "type": "deal.lost",
        "rep_id": 1,
        "occurred_at": START + timedelta(days=2),
        "data": {"loss_reason": "price"},
    }
    state = _fold([lost, quoted, opened])
    assert (state["stage"], state["status"], state["loss_reason"]) == ("lost", "lost", "price")
    assert state["closed_at"] == START + timedelta(days=2)
    assert set(state["reached_at"]) == {"lead", "visit", "quote"}
    assert state["reached_at"]["visit"] == (START + timedelta(days=1)).isoformat()


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
    ),
    st.uuids(),
)
def test_version_keys_keep_the_form_already_stored(moment, event_id):
    # Deals store these keys and compare new ones against them as text: the faster
    # formatting must give exactly what strftime gave, for every year.
    utc = moment.astimezone(UTC)
    assert event_texts(moment, event_id)[0] == f"{utc:%Y-%m-%dT%H:%M:%S.%f}Z|{event_id}"


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
    ),
    st.booleans(),
)
def test_reached_times_keep_the_form_already_stored(moment, whole_second):
    # Deals store when each stage was first reached as isoformat() text and compare new
    # times against it as text: the key's conversion is shared, the text must not change.
    if whole_second:
        moment = moment.replace(microsecond=0)
    event = {
        "id": uuid.uuid4(),
        "type": "quote.issued",
        "occurred_at": moment,
        "rep_id": 1,
        "data": {"amount": 1, "currency": "CNY"},
    }
    state = apply_event(new_deal(event["id"], 1), event)
    expected = moment.astimezone(UTC).isoformat()
    assert state["reached_at"] == {"lead": expected, "visit": expected, "quote": expected}
