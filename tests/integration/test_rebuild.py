"""Incremental ingest == rebuild from the event log, on random streams (hypothesis).

Events arrive in random batches, in any order, with re-sent duplicates; then
the ``rebuild_rollups`` job runs through the real path (job-outbox row, relay,
RQ on Redis, a worker) and must reproduce the same deals and rollups.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import text

from hq_server.extensions import db
from hq_server.jobs.outbox import add_job, relay
from tests.conftest import reset_tables
from tests.factories import Company, push

REPS = ("SH01-001", "SH01-002")
START = datetime(2026, 11, 2, tzinfo=UTC)


@st.composite
def event_streams(draw):
    deals = [
        str(uuid.UUID(int=draw(st.integers(0, 2**64)))) for _ in range(draw(st.integers(1, 4)))
    ]
    kinds = st.sampled_from(
        [
            (
                "deal.opened",
                lambda: {"name": "d", "amount": draw(st.integers(0, 10**6)), "currency": "CNY"},
            ),
            (
                "deal.stage_changed",
                lambda: {"to": draw(st.sampled_from(["lead", "visit", "quote", "won", "lost"]))},
            ),
            ("visit.logged", lambda: {"decision_maker_met": draw(st.booleans())}),
            ("quote.issued", lambda: {"amount": draw(st.integers(0, 10**6)), "currency": "CNY"}),
            (
                "deal.updated",
                lambda: {"amount": draw(st.integers(0, 10**6)), "expected_close": "2027-01-15"},
            ),
            ("deal.won", lambda: {"amount": draw(st.integers(1, 10**6))}),
            ("deal.lost", lambda: {"loss_reason": "price"}),
            ("lead.assigned", lambda: {"to_rep": draw(st.sampled_from(REPS))}),
            ("call.logged", lambda: {"connected": draw(st.booleans())}),
        ]
    )
    count = draw(st.integers(1, 30))
    ids = draw(st.lists(st.uuids(), min_size=count, max_size=count, unique=True))
    events = []
    for seq in range(1, count + 1):
        kind, data = draw(kinds)
        # Coarse times so that ties (same instant) happen and must be broken by id.
        minutes = draw(st.integers(0, 60 * 24 * 20)) // 30 * 30
        events.append(
            {
                "id": str(ids[seq - 1]),
                "seq": seq,
                "type": kind,
                "occurred_at": (START + timedelta(minutes=minutes)).isoformat(),
                "rep": draw(st.sampled_from(REPS)),
                "deal": draw(st.sampled_from(deals)),
                "data": data(),
            }
        )
    return events


def _state(conn) -> dict:
    return {
        "deals": sorted(
            map(
                tuple,
                conn.execute(
                    text(
                        "SELECT id, branch_id, rep_id, customer, name, stage, status, amount, "
                        "currency, expected_close, forecast_category, loss_reason, opened_at, "
                        "opened_day, closed_at, closed_day, last_activity_at, event_count, "
                        "reached_at::text, versions::text "
                        "FROM deals"
                    )
                ).all(),
            ),
            key=str,
        ),
        "rollups": sorted(
            map(
                tuple,
                conn.execute(
                    text("SELECT branch_id, day, rep_id, metric, value FROM daily_rollups")
                ).all(),
            ),
            key=str,
        ),
        "units": _units(conn, "unit_rollups"),
        "weeks": _weeks(conn, "weekly_rollups"),
        "unit_weeks": _weeks(conn, "weekly_unit_rollups"),
    }


def _weeks(conn, source: str) -> list[tuple]:
    """Return non-zero weekly totals, from a weekly table or summed from its daily one."""
    key = "branch_id, rep_id" if source in ("weekly_rollups", "daily_rollups") else "unit_id"
    if source.startswith("weekly"):
        sql = f"SELECT {key}, week, metric, sum(value) FROM {source} GROUP BY {key}, week, metric"
    else:
        sql = (
            f"SELECT {key}, date_trunc('week', day)::date, metric, sum(value) FROM {source} "
            f"WHERE day <> '1970-01-01' GROUP BY {key}, date_trunc('week', day), metric"
        )
    rows = conn.execute(text(f"SELECT * FROM ({sql}) s WHERE s.sum <> 0")).all()
    return sorted(map(tuple, rows), key=str)


def _units(conn, source: str) -> list[tuple]:
    """Return non-zero totals per (unit, day, metric) from unit_rollups or from the rep rows."""
    if source == "unit_rollups":
        sql = "SELECT unit_id, day, metric, sum(value) FROM unit_rollups GROUP BY 1, 2, 3"
    else:
        sql = (
            "SELECT CAST(a AS integer), r.day, r.metric, sum(r.value) FROM daily_rollups r "
            "JOIN org_units b ON b.id = r.branch_id CROSS JOIN LATERAL "
            "unnest(string_to_array(trim(BOTH '/' FROM b.path), '/')) AS a GROUP BY 1, 2, 3"
        )
    rows = conn.execute(text(f"SELECT * FROM ({sql}) s(u, d, m, v) WHERE v <> 0")).all()
    return sorted(map(tuple, rows), key=str)


@settings(max_examples=25)
@given(stream=event_streams(), seed=st.integers(0, 2**32))
def test_incremental_rollups_equal_a_rebuild(app, queue, stream, seed):
    rng = random.Random(seed)
    reset_tables(app)
    company = Company.create(app)
    client = app.test_client()
    arrivals = stream + rng.sample(stream, k=min(len(stream), rng.randint(0, 5)))
    rng.shuffle(arrivals)
    while arrivals:
        size = rng.randint(1, 8)
        batch, arrivals = arrivals[:size], arrivals[size:]
        statuses = {
            r["status"] for r in push(client, company.agent("SH01"), batch).get_json()["results"]
        }
        assert statuses <= {"accepted", "duplicate"}
    with app.app_context():
        incremental = _state(db.session.connection())
        add_job("rebuild_rollups:SH01", "rebuild_rollups", branch="SH01")
        db.session.commit()
        assert relay(queue) == 1
        SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer).work(
            burst=True
        )
        db.session.rollback()
        rebuilt = _state(db.session.connection())
        done = db.session.execute(text("SELECT done_at IS NOT NULL FROM job_outbox")).scalar()
    assert done, "the job did not mark its outbox row done"
    assert len(queue.failed_job_registry) == 0
    assert incremental["deals"] and rebuilt == incremental
    # Every unit's rows are the sums of the rep rows under it, after ingest and after a rebuild.
    with app.app_context():
        assert rebuilt["units"] == _units(db.session.connection(), "daily_rollups")
        # Every weekly row is the sum of its week's daily rows.
        assert rebuilt["weeks"] == _weeks(db.session.connection(), "daily_rollups")
        assert rebuilt["unit_weeks"] == _weeks(db.session.connection(), "unit_rollups")
