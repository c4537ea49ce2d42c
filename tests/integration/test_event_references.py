"""The event log names only existing branches and reps, checked once per statement."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from hq_server.extensions import db
from tests.factories import EventMaker, push

INSERT = text(
    "INSERT INTO events (id, branch_id, rep_id, agent_id, seq, type, occurred_at, local_day, "
    "received_at, content_hash, payload, status) "
    "SELECT gen_random_uuid(), :b, r, 'a', 1, 'call.logged', now(), current_date, now(), "
    "'\\x00', '{}', 'counted' FROM unnest(CAST(:reps AS int[])) AS r"
)


def _ids():
    branch = db.session.scalar(text("SELECT id FROM org_units WHERE code = 'SH01'"))
    reps = list(db.session.scalars(text("SELECT id FROM reps ORDER BY id")))
    return branch, reps


def _refused(statement, params) -> bool:
    try:
        with db.session.begin_nested():
            db.session.execute(statement, params)
    except IntegrityError as exc:
        assert isinstance(exc.orig, psycopg.errors.ForeignKeyViolation)
        return True
    return False


def test_events_naming_known_units_are_stored(company, ctx):
    branch, reps = _ids()
    assert not _refused(INSERT, {"b": branch, "reps": reps})
    assert db.session.scalar(text("SELECT count(*) FROM events")) == len(reps)


@pytest.mark.parametrize("which", ["branch", "rep", "one rep among many"])
def test_a_statement_naming_a_missing_unit_stores_nothing(company, ctx, which):
    branch, reps = _ids()
    missing = max(reps) + 1000
    params = {
        "branch": {"b": branch + 1000, "reps": reps},
        "rep": {"b": branch, "reps": [missing]},
        "one rep among many": {"b": branch, "reps": [*reps, missing, *reps]},
    }[which]
    assert _refused(INSERT, params)
    assert db.session.scalar(text("SELECT count(*) FROM events")) == 0


def test_an_update_cannot_point_an_event_at_a_missing_rep(company, ctx):
    branch, reps = _ids()
    db.session.execute(INSERT, {"b": branch, "reps": reps[:1]})
    assert _refused(text("UPDATE events SET rep_id = :r"), {"r": max(reps) + 1000})
    assert not _refused(text("UPDATE events SET rep_id = :r"), {"r": reps[-1]})


@pytest.mark.parametrize("table", ["reps", "org_units"])
def test_units_that_events_name_cannot_be_deleted(company, client, ctx, table):
    events = EventMaker(rep="SH01-001")
    resp = push(client, company.agent("SH01"), [events.make("call.logged", {"connected": True})])
    assert resp.status_code == 200
    assert db.session.scalar(text("SELECT count(*) FROM events")) == 1
    named = {"reps": "SELECT rep_id FROM events", "org_units": "SELECT branch_id FROM events"}
    row = db.session.scalar(text(named[table]))
    assert _refused(text(f"DELETE FROM {table} WHERE id = :i"), {"i": row})
    # A rep no event names can go (the app closes units instead, but SQL may tidy up).
    if table == "reps":
        unnamed = db.session.scalar(text("SELECT id FROM reps WHERE code = 'CD01-002'"))
        db.session.execute(text("DELETE FROM deals WHERE rep_id = :i"), {"i": unnamed})
        assert not _refused(text("DELETE FROM reps WHERE id = :i"), {"i": unnamed})


def test_pushes_still_store_their_events(company, client, ctx):
    events = EventMaker(rep="SH01-002")
    batch = [events.make("call.logged", {"connected": True}) for _ in range(20)]
    resp = push(client, company.agent("SH01"), batch)
    assert resp.status_code == 200
    assert resp.json["counts"]["accepted"] == 20
    stored = db.session.scalar(
        text("SELECT count(*) FROM events WHERE id = ANY(:ids)"),
        {"ids": [uuid.UUID(e["id"]) for e in batch]},
    )
    assert stored == 20
