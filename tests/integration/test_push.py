"""POST /api/v1/sync/push: idempotency, conflicts, partial batches, hostile input."""

from __future__ import annotations

import gzip
import json
import uuid

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from hq_server.extensions import db
from shared.events import DATA_SCHEMAS
from tests.factories import EventMaker, push
from tests.samples import ENVELOPE_KEYS, full_event


def _count(app, table: str) -> int:
    with app.app_context():
        return db.session.execute(text(f"SELECT count(*) FROM {table}")).scalar()


def _snapshot(app) -> dict:
    with app.app_context():
        return {
            t: sorted(map(tuple, db.session.execute(text(f"SELECT * FROM {t}")).all()), key=str)
            for t in ("events", "deals", "daily_rollups", "seq_gaps")
        }


def test_a_valid_batch_is_accepted_and_stored(app, client, company):
    maker = EventMaker()
    deal = str(uuid.uuid4())
    events = [
        maker.deal_opened(deal),
        maker.make("visit.logged", {"decision_maker_met": True}, deal=deal),
    ]
    resp = push(client, company.agent("SH01"), events)
    assert resp.status_code == 200
    body = resp.get_json()
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted"]
    assert body["counts"] == {"accepted": 2, "duplicate": 0, "rejected": 0}
    assert _count(app, "events") == 2
    with app.app_context():
        stage, reached = db.session.execute(
            text("SELECT stage, reached_at FROM deals WHERE id = :d"), {"d": deal}
        ).one()
    assert stage == "lead"
    assert set(reached) == {"lead", "visit"}


def test_the_same_batch_twice_changes_nothing_the_second_time(app, client, company):
    maker = EventMaker()
    deal = str(uuid.uuid4())
    events = [
        maker.deal_opened(deal),
        maker.make("quote.issued", {"amount": 900, "currency": "CNY"}, deal=deal),
        maker.make("deal.won", deal=deal),
    ]
    push(client, company.agent("SH01"), events)
    before = _snapshot(app)
    again = push(client, company.agent("SH01"), events).get_json()
    assert [r["status"] for r in again["results"]] == ["duplicate"] * 3
    assert _snapshot(app) == before


def test_same_id_with_another_body_is_a_conflict_and_changes_nothing(app, client, company):
    maker = EventMaker()
    event = maker.deal_opened(amount=100)
    push(client, company.agent("SH01"), [event])
    before = _snapshot(app)
    altered = dict(event, data=dict(event["data"], amount=999))
    result = push(client, company.agent("SH01"), [altered]).get_json()["results"][0]
    assert result["status"] == "rejected"
    assert result["code"] == "conflict"
    assert _snapshot(app) == before


def test_a_stored_event_is_answered_from_the_store_before_its_rep_is_checked(app, client, company):
    """Re-sent events get the stored answer even where the rep no longer fits the branch."""
    sh = EventMaker("SH01-001")
    event = sh.make("call.logged", {"connected": True})
    push(client, company.agent("SH01"), [event])
    before = _snapshot(app)
    fresh = sh.make("call.logged", {"connected": True})
    results = push(client, company.agent("CD01"), [event, fresh]).get_json()["results"]
    assert [(r["status"], r.get("code")) for r in results] == [
        ("duplicate", None),
        ("rejected", "rep_other_branch"),
    ]
    altered = dict(event, data={"connected": False})
    (result,) = push(client, company.agent("CD01"), [altered]).get_json()["results"]
    assert (result["status"], result["code"]) == ("rejected", "conflict")
    assert _snapshot(app) == before


def test_a_batch_with_bad_events_stores_the_good_ones(app, client, company):
    maker = EventMaker()
    good1, good2 = maker.deal_opened(), maker.make("call.logged", {"connected": True})
    naive = maker.make("call.logged", {"connected": False})
    naive["occurred_at"] = "2026-11-02T10:00:00"
    unknown = maker.make("telepathy.logged")
    bad_data = maker.make(
        "quote.issued", {"amount": -5, "currency": "yuan"}, deal=str(uuid.uuid4())
    )
    wrong_offset = maker.make("call.logged", {"connected": True})
    wrong_offset["occurred_at"] = "2026-11-02T10:00:00+15:00"
    resp = push(
        client,
        company.agent("SH01"),
        [good1, naive, unknown, bad_data, good2, wrong_offset, "not an object"],
    )
    results = resp.get_json()["results"]
    assert [r["status"] for r in results] == [
        "accepted",
        "rejected",
        "rejected",
        "rejected",
        "accepted",
        "rejected",
        "rejected",
    ]
    assert [r["index"] for r in results] == list(range(7))
    assert results[1]["errors"] == {"occurred_at": ["Not a valid aware datetime."]}
    assert "type" in results[2]["errors"]
    assert set(results[3]["errors"]["data"]) == {"amount", "currency"}
    assert "occurred_at" in results[5]["errors"]
    assert all(r["code"] == "invalid" for r in results if r["status"] == "rejected")
    assert _count(app, "events") == 2


def test_values_postgresql_cannot_hold_are_rejected_per_event(app, client, company):
    # Each of these failed the whole push with a 500 (and the agent would resend it for
    # ever): a NUL character in a text, a version beyond an integer column, a moment
    # before year 1 in UTC.
    maker = EventMaker()
    good = maker.make("call.logged", {"connected": True})
    nul = maker.make("call.logged", {"connected": True}, customer="Acme\x00")
    version = maker.make("call.logged", {"connected": True}, playbook_version=2**40)
    early = maker.make("call.logged", {"connected": True})
    early["occurred_at"] = "0001-01-01T00:00:00+14:00"
    resp = push(client, company.agent("SH01"), [nul, good, version, early])
    assert resp.status_code == 200
    results = resp.get_json()["results"]
    assert [r["status"] for r in results] == ["rejected", "accepted", "rejected", "rejected"]
    assert results[0]["errors"] == {"customer": ["must not contain the NUL character (U+0000)"]}
    assert list(results[2]["errors"]) == ["playbook_version"]
    assert list(results[3]["errors"]) == ["occurred_at"]
    assert _count(app, "events") == 1


# Values a store or a date computation could choke on, beside plain wrong ones.
HOSTILE = [
    "\x00",
    "Acme\x00 Ltd",
    2**31,
    2**40,
    2**63,
    -(2**63) - 1,
    1e308,
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T20:00:00-12:00",
    "1970-01-01T12:00:00+00:00",
    "",
    "x" * 1000,
    [],
    {},
    None,
    True,
]


@st.composite
def hostile_events(draw) -> dict:
    """A valid event of this branch's rep with one to three fields set to hostile values."""
    type_ = draw(st.sampled_from(sorted(DATA_SCHEMAS)))
    raw = full_event(type_)
    raw["rep"] = "SH01-001"
    data_keys = [f.data_key or name for name, f in DATA_SCHEMAS[type_].load_fields.items()]
    for _ in range(draw(st.integers(1, 3))):
        in_data = draw(st.booleans()) and isinstance(raw.get("data"), dict)
        target, keys = (raw["data"], data_keys) if in_data else (raw, ENVELOPE_KEYS)
        target[draw(st.sampled_from(keys))] = draw(st.sampled_from(HOSTILE))
    return raw


@settings(max_examples=80)
@given(st.lists(hostile_events(), min_size=1, max_size=6))
def test_any_batch_is_answered_event_by_event_and_what_is_accepted_is_stored(
    app, client, company, batch
):
    # Never a failed push (a 500 made the agent send the batch again for ever), never an
    # accepted event that was not stored.
    try:
        body = json.dumps({"agent": {"id": "fuzz", "version": "1"}, "events": batch}, allow_nan=0)
    except ValueError:
        assume(False)  # NaN is no JSON: the body would be refused as a whole (400 bad_json)
    headers = {**company.agent("SH01"), "Content-Type": "application/json"}
    resp = client.post("/api/v1/sync/push", data=body, headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    results = resp.get_json()["results"]
    assert [r["index"] for r in results] == list(range(len(batch)))
    accepted = [r["id"] for r in results if r["status"] == "accepted"]
    with app.app_context():
        stored = db.session.execute(
            text("SELECT count(*) FROM events WHERE id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": accepted},
        ).scalar()
    assert stored == len(accepted)


def test_an_event_nested_deeper_than_json_can_be_written_is_rejected_alone(app, client, company):
    maker = EventMaker()
    good = maker.make("call.logged", {"connected": True})
    deep = maker.make("call.logged", {"connected": True})
    deep["data"]["note"] = json.loads('{"a":' * 300 + "1" + "}" * 300)  # reads, never writes
    resp = push(client, company.agent("SH01"), [deep, good])
    assert resp.status_code == 200
    assert [r["status"] for r in resp.get_json()["results"]] == ["rejected", "accepted"]
    assert _count(app, "events") == 1


def test_a_value_the_database_refuses_is_a_json_400_not_a_500(client, company):
    # Checked nowhere before the database: an id beyond its column, a NUL in a code.
    headers = company.user("hq_manager")
    for url in ("/api/v1/digests/99999999999", "/api/v1/funnel?unit=a%00b"):
        resp = client.get(url, headers=headers)
        assert (resp.status_code, resp.get_json()["code"]) == (400, "bad_value"), url
    # Days out of the API's bounds are refused by the arguments' check, by name.
    far = client.get("/api/v1/funnel?unit=HQ&to=0001-01-01", headers=headers)
    assert far.status_code == 422 and "to" in far.get_json()["errors"]


def test_a_rep_or_deal_of_another_branch_is_rejected(app, client, company):
    sh, cd = EventMaker("SH01-001"), EventMaker("CD01-001")
    cd_deal = cd.deal_opened()
    push(client, company.agent("CD01"), [cd_deal])
    events = [
        sh.make("call.logged", {"connected": True}, rep="CD01-001"),
        sh.make("deal.won", deal=cd_deal["deal"]),
        sh.make("call.logged", {"connected": True}, rep="NOBODY"),
        sh.make("lead.assigned", {"to_rep": "CD01-002"}, deal=str(uuid.uuid4())),
    ]
    results = push(client, company.agent("SH01"), events).get_json()["results"]
    assert [r["code"] for r in results] == [
        "rep_other_branch",
        "deal_other_branch",
        "unknown_rep",
        "rep_other_branch",
    ]
    assert _count(app, "events") == 1


def test_an_event_from_the_future_is_rejected(client, company):
    maker = EventMaker()
    event = maker.make("call.logged", {"connected": True}, at=None)
    event["occurred_at"] = "2099-01-01T00:00:00+08:00"
    result = push(client, company.agent("SH01"), [event]).get_json()["results"][0]
    assert result["code"] == "occurred_in_future"


def test_seq_gaps_are_recorded_and_closed_by_late_arrivals(app, client, company):
    maker = EventMaker()
    events = [maker.make("call.logged", {"connected": True}) for _ in range(6)]
    push(client, company.agent("SH01"), [events[0], events[3], events[5]])
    with app.app_context():
        gaps = db.session.execute(
            text("SELECT first_seq, last_seq FROM seq_gaps ORDER BY first_seq")
        ).all()
    assert [tuple(g) for g in gaps] == [(2, 3), (5, 5)]
    push(client, company.agent("SH01"), [events[1], events[4]])
    with app.app_context():
        gaps = db.session.execute(text("SELECT first_seq, last_seq FROM seq_gaps")).all()
        stream = db.session.execute(
            text("SELECT max_seq, events_accepted FROM agent_streams")
        ).one()
    assert [tuple(g) for g in gaps] == [(3, 3)]
    assert tuple(stream) == (6, 5)


def test_gzip_bodies_are_accepted(app, client, company):
    maker = EventMaker()
    resp = push(client, company.agent("SH01"), [maker.deal_opened()], gz=True)
    assert resp.get_json()["counts"]["accepted"] == 1


def test_a_gzip_bomb_is_refused_with_413(app, client, company):
    app.config["SETTINGS"] = app.config["SETTINGS"].__class__(
        **{**app.config["SETTINGS"].__dict__, "max_decompressed_bytes": 10_000}
    )
    try:
        body = gzip.compress(b"[" + b" " * 1_000_000 + b"]")
        resp = client.post(
            "/api/v1/sync/push",
            data=body,
            headers={**company.agent("SH01"), "Content-Encoding": "gzip"},
        )
    finally:
        app.config["SETTINGS"] = app.config["SETTINGS"].__class__(
            **{**app.config["SETTINGS"].__dict__, "max_decompressed_bytes": 32 * 1024 * 1024}
        )
    assert resp.status_code == 413
    assert resp.get_json()["code"] == "decompressed_too_large"


def test_an_oversized_body_is_refused_with_json_413(app, client, company):
    limit = app.config["MAX_CONTENT_LENGTH"]
    resp = client.post(
        "/api/v1/sync/push",
        data=b"x" * (limit + 1),
        headers={**company.agent("SH01"), "Content-Type": "application/json"},
    )
    assert resp.status_code == 413
    assert resp.is_json and resp.get_json()["code"] == "body_too_large"


def test_too_many_events_is_refused_with_413(app, client, company):
    maker = EventMaker()
    events = [maker.make("call.logged", {"connected": True}) for _ in range(1001)]
    resp = push(client, company.agent("SH01"), events)
    assert resp.status_code == 413
    assert resp.get_json()["code"] == "too_many_events"
    assert _count(app, "events") == 0


def test_malformed_json_gets_a_json_400(client, company):
    resp = client.post(
        "/api/v1/sync/push",
        data=b'{"agent": ',
        headers={**company.agent("SH01"), "Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.get_json()["code"] == "bad_json"


def test_a_body_without_agent_gets_field_errors(client, company):
    resp = client.post(
        "/api/v1/sync/push",
        data=json.dumps({"events": []}),
        headers={**company.agent("SH01"), "Content-Type": "application/json"},
    )
    assert resp.status_code == 422
    assert resp.get_json()["errors"] == {"agent": ["Missing data for required field."]}


def test_an_agent_id_with_a_nul_character_gets_a_field_error_and_stores_nothing(
    app, client, company
):
    # It was found only when the stream's row was written, after the events: a 400 then.
    resp = push(client, company.agent("SH01"), [EventMaker().deal_opened()], agent="a\x00")
    assert resp.status_code == 422
    assert resp.get_json()["errors"] == {
        "agent": {"id": ["must not contain the NUL character (U+0000)"]}
    }
    assert _count(app, "events") == 0


def test_push_needs_an_agent_token(client, company):
    no_token = client.post("/api/v1/sync/push", json={"agent": {"id": "a"}, "events": []})
    bad_token = client.post(
        "/api/v1/sync/push",
        json={"agent": {"id": "a"}, "events": []},
        headers={"Authorization": "Bearer hqa_forged"},
    )
    user_token = client.post(
        "/api/v1/sync/push",
        json={"agent": {"id": "a"}, "events": []},
        headers=company.user("hq_manager"),
    )
    assert (no_token.status_code, bad_token.status_code, user_token.status_code) == (401, 401, 403)
    assert no_token.get_json()["code"] == "unauthorized"
    assert user_token.get_json()["code"] == "forbidden"


def test_a_revoked_token_or_a_deactivated_user_is_refused_at_once(app, client, company):
    def funnel(headers) -> int:
        return client.get("/api/v1/funnel?unit=EAST", headers=headers).status_code

    def pushed(headers) -> int:
        body = {"agent": {"id": "a", "version": "t"}, "events": []}
        return client.post("/api/v1/sync/push", json=body, headers=headers).status_code

    assert (pushed(company.agent("SH01")), funnel(company.user("region_manager"))) == (200, 200)
    assert funnel(company.user("staff")) == 404  # a branch's staff see their branch only
    with app.app_context():
        db.session.execute(
            text("UPDATE api_tokens SET revoked_at = now() WHERE branch_id IS NOT NULL")
        )
        db.session.execute(
            text("UPDATE users SET active = false WHERE username = 'region_manager-user'")
        )
        db.session.commit()
    assert (pushed(company.agent("SH01")), funnel(company.user("region_manager"))) == (401, 401)
    assert funnel(company.user("hq_manager")) == 200  # the others' tokens still work


def test_a_closed_branch_can_neither_push_nor_pull(app, client, company):
    token = company.agent("SH01")
    with app.app_context():
        db.session.execute(
            text("UPDATE org_units SET active_to = current_date WHERE code = 'SH01'")
        )
        db.session.commit()
    resp = push(client, token, [EventMaker().deal_opened()])
    pulled = client.get("/api/v1/sync/pull", headers=token)
    assert (resp.status_code, pulled.status_code) == (403, 403)
    assert resp.get_json()["code"] == pulled.get_json()["code"] == "branch_inactive"
    assert _count(app, "events") == 0
    assert _count(app, "push_failures") == 0  # a closed branch is not judged any more


def test_dry_run_validates_but_stores_nothing(app, client, company):
    maker = EventMaker()
    events = [maker.deal_opened(), maker.make("telepathy.logged")]
    body = push(client, company.agent("SH01"), events, query="?dry_run=true").get_json()
    assert body["dry_run"] is True
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected"]
    assert _count(app, "events") == 0
    assert _count(app, "agent_streams") == 0


def test_a_dry_run_answers_stored_events_as_a_push_would(app, client, company):
    maker = EventMaker()
    stored = maker.deal_opened(amount=100)
    push(client, company.agent("SH01"), [stored])
    altered = dict(stored, data=dict(stored["data"], amount=999))
    events = [maker.make("call.logged", {"connected": True}), stored]
    for batch, expected in ((events, ["accepted", "duplicate"]), ([altered], ["rejected"])):
        body = push(client, company.agent("SH01"), batch, query="?dry_run=true").get_json()
        assert [r["status"] for r in body["results"]] == expected
    assert body["results"][0]["code"] == "conflict"
    assert _count(app, "events") == 1


def test_duplicate_ids_inside_one_batch(app, client, company):
    maker = EventMaker()
    event = maker.deal_opened()
    other = dict(event, data=dict(event["data"], amount=1))
    results = push(client, company.agent("SH01"), [event, event, other]).get_json()["results"]
    assert [r["status"] for r in results] == ["accepted", "duplicate", "rejected"]
    assert results[2]["code"] == "conflict"
    assert _count(app, "events") == 1


def test_unknown_routes_and_methods_answer_json(client):
    missing = client.get("/api/v1/nothing-here")
    wrong = client.get("/api/v1/sync/push")
    assert missing.status_code == 404 and missing.get_json()["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.get_json()["code"] == "method_not_allowed"


def test_rejected_events_do_not_count_as_seq_gaps(app, client, company):
    maker = EventMaker()
    good, bad, good2 = (maker.make("call.logged", {"connected": True}) for _ in range(3))
    bad["rep"] = "NOBODY"
    push(client, company.agent("SH01"), [good, bad, good2])
    assert _count(app, "seq_gaps") == 0


def test_pull_gives_the_branch_its_reps_stages_and_open_leads(client, company):
    maker = EventMaker("SH01-001")
    lead, deal = str(uuid.uuid4()), str(uuid.uuid4())
    push(
        client,
        company.agent("SH01"),
        [
            maker.make("lead.created", {"source": "web"}, deal=lead, customer="ACME"),
            maker.make("lead.assigned", {"to_rep": "SH01-002"}, deal=lead),
            maker.deal_opened(deal),
            maker.make("deal.stage_changed", {"to": "quote"}, deal=deal),
        ],
    )
    resp = client.get("/api/v1/sync/pull", headers=company.agent("SH01"))
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert body["branch"] == {"code": "SH01", "name": "Branch SH01", "timezone": "Asia/Shanghai"}
    assert [r["code"] for r in body["reps"]] == ["SH01-001", "SH01-002"]
    assert [s["name"] for s in body["stages"]][:2] == ["lead", "visit"]
    assert [(lead_["deal"], lead_["rep"], lead_["customer"]) for lead_ in body["leads"]] == [
        (lead, "SH01-002", "ACME")
    ]
    later = client.get(
        "/api/v1/sync/pull", query_string={"cursor": body["cursor"]}, headers=company.agent("SH01")
    ).get_json()
    assert later["leads"] == []
