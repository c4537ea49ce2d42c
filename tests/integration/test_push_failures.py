"""Failed pushes are recorded apart from the push; a branch whose pushes keep failing is flagged."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from hq_server.extensions import db
from hq_server.services.lagging import Week, scan_lagging
from tests.factories import EventMaker, push

BAD_JSON = b'{"agent": {"id": "agent-1"'


def _rows(app, sql: str, **params) -> list[tuple]:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(text(sql), params)]


def _failures(app) -> list[tuple]:
    return _rows(
        app,
        "SELECT b.code, f.agent_id, f.http_status, f.code, f.events FROM push_failures f "
        "JOIN org_units b ON b.id = f.branch_id ORDER BY f.id",
    )


def _stream(app, branch: str, agent: str) -> tuple:
    (row,) = _rows(
        app,
        "SELECT s.pushes, s.failed_pushes, s.last_failure_code, s.last_failure_at IS NOT NULL "
        "FROM agent_streams s JOIN org_units b ON b.id = s.branch_id "
        "WHERE b.code = :b AND s.agent_id = :a",
        b=branch,
        a=agent,
    )
    return row


def _bad_json(client, headers):
    resp = client.post(
        "/api/v1/sync/push",
        data=BAD_JSON,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert resp.status_code == 400 and resp.get_json()["code"] == "bad_json"


def _good(client, headers, maker: EventMaker, times: int = 1) -> None:
    for _ in range(times):
        resp = push(client, headers, [maker.make("call.logged", {"connected": True})])
        assert resp.get_json()["counts"]["accepted"] == 1


def _unknown_rep(client, headers):
    maker = EventMaker("XX-404")
    events = [maker.make("call.logged", {"connected": True}) for _ in range(2)]
    body = push(client, headers, events).get_json()
    assert body["counts"] == {"accepted": 0, "duplicate": 0, "rejected": 2}


@pytest.fixture
def refusing(app):
    """Make PostgreSQL refuse inserts into a table (a fault at the process edge)."""
    tables = []

    def refuse(table: str, when: str = "true") -> None:
        with app.app_context():
            db.session.connection().exec_driver_sql(
                "CREATE OR REPLACE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql "
                "AS $$ BEGIN RAISE EXCEPTION 'refused for the test'; END $$"
            )
            db.session.connection().exec_driver_sql(
                f"CREATE TRIGGER refuse_insert BEFORE INSERT ON {table} FOR EACH ROW "
                f"WHEN ({when}) EXECUTE FUNCTION refuse_insert()"
            )
            db.session.commit()
        tables.append(table)

    yield refuse
    with app.app_context():
        for table in tables:
            db.session.connection().exec_driver_sql(f"DROP TRIGGER refuse_insert ON {table}")
        db.session.connection().exec_driver_sql("DROP FUNCTION IF EXISTS refuse_insert()")
        db.session.commit()


def test_a_good_push_is_counted_and_not_recorded_as_a_failure(app, client, company):
    _good(client, company.agent("SH01"), EventMaker(), times=2)
    assert _failures(app) == []
    assert _stream(app, "SH01", "agent-1") == (2, 0, None, False)
    assert _rows(app, "SELECT sum(pushes) FROM push_counts") == [(2,)]


def test_a_body_that_is_not_json_is_recorded_without_an_agent(app, client, company):
    _bad_json(client, company.agent("SH01"))
    assert _failures(app) == [("SH01", "", 400, "bad_json", None)]
    assert _stream(app, "SH01", "") == (0, 1, "bad_json", True)
    assert _rows(app, "SELECT count(*) FROM push_counts") == [(0,)]


def test_an_invalid_body_is_recorded_with_the_agent_it_names(app, client, company):
    resp = client.post(
        "/api/v1/sync/push",
        json={"agent": {"id": "agent-7", "colour": "red"}, "events": [{}, {}]},
        headers=company.agent("HZ01"),
    )
    assert resp.status_code == 422 and resp.get_json()["code"] == "invalid"
    assert _failures(app) == [("HZ01", "agent-7", 422, "invalid", 2)]


def test_a_batch_with_every_event_rejected_is_recorded_with_the_commonest_code(
    app, client, company
):
    maker = EventMaker()
    first, second = maker.deal_opened(), maker.deal_opened()
    push(client, company.agent("SH01"), [first, second])
    changed = [dict(e, data=dict(e["data"], amount=1)) for e in (first, second)]
    resp = push(client, company.agent("SH01"), [*changed, EventMaker("XX-404").deal_opened()])
    assert resp.status_code == 200
    assert [r["code"] for r in resp.get_json()["results"]] == [
        "conflict",
        "conflict",
        "unknown_rep",
    ]
    assert _failures(app) == [("SH01", "agent-1", 200, "conflict", 3)]
    # Both pushes reached ingest; one of them failed.
    assert _stream(app, "SH01", "agent-1") == (2, 1, "conflict", True)
    assert _rows(app, "SELECT sum(pushes) FROM push_counts") == [(2,)]


def test_a_dry_run_is_never_recorded(app, client, company):
    maker = EventMaker("XX-404")
    push(client, company.agent("SH01"), [maker.deal_opened()], query="?dry_run=true")
    bad = client.post(
        "/api/v1/sync/push?dry_run=true",
        data=BAD_JSON,
        headers={**company.agent("SH01"), "Content-Type": "application/json"},
    )
    assert bad.status_code == 400
    assert _failures(app) == []
    assert _rows(app, "SELECT count(*) FROM agent_streams") == [(0,)]


def _race(app, client, company, statement: str, params: dict, events: list) -> object:
    """Push ``events`` from SH01 while another transaction holds ``statement``'s rows.

    The other transaction commits once the push waits on its lock; return the answer.
    """
    answers: list = []

    def push_from_sh01():
        try:
            answers.append(push(client, company.agent("SH01"), events))
        except Exception as exc:  # reported by the caller's assertions
            answers.append(exc)

    with app.app_context():
        other = db.engine.connect()
        other.begin()
        other.execute(text(statement), params)
        pusher = threading.Thread(target=push_from_sh01)
        pusher.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _waiting_on_a_lock(app):
            time.sleep(0.05)
        other.commit()
        other.close()
    pusher.join(20)
    (resp,) = answers
    return resp


def _hz01_ids(app) -> dict:
    ((branch_id, rep_id),) = _rows(
        app,
        "SELECT b.id, r.id FROM org_units b JOIN reps r ON r.branch_id = b.id "
        "WHERE r.code = 'HZ01-001'",
    )
    return {"b": branch_id, "r": rep_id}


def test_an_event_id_stored_meanwhile_by_another_branch_is_answered_as_a_conflict(
    app, client, company
):
    event = EventMaker().make("call.logged", {"connected": True})
    # Another branch's push stores the same id with another body and commits while this
    # push's insert waits for it: the id is taken, so the event is a conflict, at once.
    resp = _race(
        app,
        client,
        company,
        "INSERT INTO events (id, branch_id, rep_id, agent_id, seq, type, occurred_at, "
        "local_day, content_hash, payload) VALUES (:id, :b, :r, 'agent-9', 1, "
        "'call.logged', now(), current_date, :h, '{}')",
        {"id": uuid.UUID(event["id"]), "h": bytes(32), **_hz01_ids(app)},
        [event],
    )
    assert resp.status_code == 200
    assert [(r["status"], r.get("code")) for r in resp.get_json()["results"]] == [
        ("rejected", "conflict")
    ]
    assert _failures(app) == [("SH01", "agent-1", 200, "conflict", 1)]
    assert _rows(app, "SELECT b.code FROM events e JOIN org_units b ON b.id = e.branch_id") == [
        ("HZ01",)
    ]


def test_a_push_that_loses_a_race_for_a_deal_is_rolled_back_and_its_409_recorded(
    app, client, company
):
    sh = EventMaker("SH01-001")
    events = [sh.make("call.logged", {"connected": True}), sh.deal_opened()]
    # Another branch's push creates the same deal and commits while this push waits on it.
    resp = _race(
        app,
        client,
        company,
        "INSERT INTO deals (id, branch_id, status, event_count, reached_at, versions) "
        "VALUES (:id, :b, 'open', 1, '{}', '{}')",
        {"id": uuid.UUID(events[1]["deal"]), **_hz01_ids(app)},
        events,
    )
    assert resp.status_code == 409 and resp.get_json()["code"] == "retry"
    assert _failures(app) == [("SH01", "agent-1", 409, "retry", 2)]
    assert _stream(app, "SH01", "agent-1") == (0, 1, "retry", True)
    assert _rows(app, "SELECT count(*) FROM events") == [(0,)]  # nothing of the push stayed
    assert _rows(app, "SELECT b.code FROM deals d JOIN org_units b ON b.id = d.branch_id") == [
        ("HZ01",)
    ]


def _waiting_on_a_lock(app) -> bool:
    with app.app_context(), db.engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalar()
        )


def test_a_server_error_is_answered_as_such_and_recorded(app, client, company, refusing):
    refusing("events", "NEW.agent_id = 'agent-broken'")
    maker = EventMaker()
    resp = push(client, company.agent("SH01"), [maker.deal_opened()], agent="agent-broken")
    assert resp.status_code == 500 and resp.get_json()["code"] == "internal_error"
    assert _failures(app) == [("SH01", "agent-broken", 500, "internal_error", 1)]
    assert _rows(app, "SELECT count(*) FROM events") == [(0,)]


def test_recording_a_failure_never_hides_the_answer_to_the_push(app, client, company, refusing):
    refusing("push_failures")
    _bad_json(client, company.agent("SH01"))
    _unknown_rep(client, company.agent("SH01"))
    _good(client, company.agent("SH01"), EventMaker())
    assert _failures(app) == []
    assert _stream(app, "SH01", "agent-1") == (2, 0, None, False)


def _failing_flags(client, company, unit: str) -> list[dict]:
    week = Week.finished_before(datetime.now(UTC).date())
    flags = client.get(
        f"/api/v1/lagging?unit={unit}&from={week.start}&to={week.end}",
        headers=company.user("hq_manager"),
    ).get_json()["flags"]
    return [f for f in flags if f["check"] == "failing"]


def _scan(client, company) -> None:
    resp = client.post("/api/v1/lagging/scan", headers=company.user("hq_manager"))
    assert resp.status_code == 200


def test_a_branch_whose_pushes_keep_failing_is_flagged_with_the_numbers(client, company):
    sh01, hz01 = company.agent("SH01"), company.agent("HZ01")
    _good(client, sh01, EventMaker(), times=2)
    for _ in range(3):
        _bad_json(client, sh01)
    _unknown_rep(client, sh01)
    _good(client, hz01, EventMaker("HZ01-001"), times=10)
    _scan(client, company)
    (flag,) = _failing_flags(client, company, "HQ")
    # 2 good + 1 every-event-rejected reached ingest, 3 were refused: 4 failed of 6.
    assert (flag["unit"], flag["metric"], flag["severity"]) == ("SH01", "push_failures", "alert")
    assert flag["n"] == 6 and flag["value"] == pytest.approx(4 / 6)
    assert flag["limit"] == 0.5 and flag["peer_value"] == 0.0
    assert flag["details"]["codes"] == {"bad_json": 3, "unknown_rep": 1}
    assert flag["reason"]["en"] == (
        "4 of 6 pushes failed in the last 24 hours (67%; limit 50%); most often bad_json (3); "
        "other branches 0%"
    )
    assert "6 次推送中 4 次失败（67%；上限 50%）" in flag["reason"]["zh"]
    assert "bad_json（3 次）" in flag["reason"]["zh"]


def test_one_failure_among_good_pushes_or_two_failures_alone_are_not_flagged(client, company):
    _bad_json(client, company.agent("HZ01"))
    _good(client, company.agent("HZ01"), EventMaker("HZ01-001"), times=10)
    for _ in range(2):
        _bad_json(client, company.agent("CD01"))
    _scan(client, company)
    assert _failing_flags(client, company, "HQ") == []


def test_the_flag_is_resolved_when_the_branch_pushes_well_again(app, client, company):
    sh01, maker = company.agent("SH01"), EventMaker()
    for _ in range(3):
        _bad_json(client, sh01)
    _good(client, sh01, maker, times=9)
    _scan(client, company)
    (flag,) = _failing_flags(client, company, "SH01")
    assert (flag["severity"], flag["n"], flag["limit"]) == ("warn", 12, 0.2)
    ack = client.post(
        f"/api/v1/lagging/{flag['id']}/acknowledge",
        json={"note": "agent upgraded"},
        headers=company.user("branch_manager"),
    )
    assert ack.get_json()["status"] == "acknowledged"
    _good(client, sh01, maker, times=3)  # 3 of 15: 20 %, still at the limit
    _scan(client, company)
    (flag,) = _failing_flags(client, company, "SH01")
    assert flag["status"] == "acknowledged" and flag["n"] == 15
    _good(client, sh01, maker)  # 3 of 16: under 20 %
    _scan(client, company)
    (flag,) = _failing_flags(client, company, "SH01")
    assert flag["status"] == "resolved" and flag["note"] == "agent upgraded"


def test_failures_older_than_a_day_no_longer_count(app, client, company):
    for _ in range(3):
        _bad_json(client, company.agent("SH01"))
    now = datetime.now(UTC)
    with app.app_context():
        assert scan_lagging(now)["failing"] == 1
        db.session.commit()
        assert scan_lagging(now + timedelta(hours=26)).get("failing") is None
        db.session.commit()
        (status,) = db.session.execute(
            text("SELECT status FROM lagging_flags WHERE \"check\" = 'failing'")
        ).scalars()
    assert status == "resolved"
