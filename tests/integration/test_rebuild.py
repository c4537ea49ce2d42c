"""Incremental ingest == rebuild from the event log, on random streams (hypothesis).

Events arrive in random batches, in any order, with re-sent duplicates; then
the ``rebuild_rollups`` job runs through the real path (job-outbox row, relay,
RQ on Redis, a worker) and must reproduce the same deals and rollups.
"""

from __future__ import annotations

import random
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import text

from hq_server.extensions import db
from hq_server.jobs.outbox import add_job, relay
from hq_server.models import OrgUnit, Rep
from hq_server.models.rollups import STRIPES
from hq_server.services.compaction import compact_unit_rollups
from hq_server.services.ingest import upsert_rollups
from hq_server.services.org import import_org
from hq_server.services.rebuild import rebuild_branch
from tests.conftest import reset_tables
from tests.factories import Company, EventMaker, app_thread, lock_waiters, push, wait_until

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


def _drift(conn, rng: random.Random) -> None:
    """Corrupt SH01's figures as a faulty release would, at every level alike.

    Some of its rollup rows lost, counts that never happened added, a deal's state garbled.
    """
    branch = _branch("SH01")
    rows = conn.execute(
        text(
            "SELECT rep_id, day, metric, value FROM daily_rollups "
            "WHERE branch_id = :b AND metric NOT LIKE 'rule\\_%'"
        ),
        {"b": branch.id},
    ).all()
    totals: dict[tuple, Decimal] = {}
    for rep_id, day, metric, value in rng.sample(rows, k=min(len(rows), rng.randint(0, 3))):
        totals[(rep_id, day, metric)] = -value
    reps = [_rep_id(code) for code in REPS]
    for _ in range(rng.randint(0, 2)):
        day = START.date() + timedelta(days=rng.randint(0, 25))
        key = (rng.choice(reps), day, rng.choice(["calls", "visits", "deals_opened"]))
        totals[key] = totals.get(key, Decimal(0)) + rng.randint(1, 5)
    upsert_rollups(conn, branch, totals)
    if rng.random() < 0.5:
        conn.execute(
            text(
                "UPDATE deals SET stage = 'won', event_count = event_count + 7 "
                "WHERE id = (SELECT min(id::text)::uuid FROM deals)"
            )
        )
    db.session.commit()


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
        _drift(db.session.connection(), rng)  # what the rebuild is there to repair
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


def _branch(code: str) -> OrgUnit:
    branch = db.session.scalar(db.select(OrgUnit).where(OrgUnit.code == code))
    db.session.expunge(branch)
    return branch


def _rep_id(code: str) -> int:
    return db.session.scalar(db.select(Rep.id).where(Rep.code == code))


def test_a_rebuild_repairs_drift_in_deals_and_rollups(app, client, company):
    maker = EventMaker("SH01-001", start=datetime(2026, 11, 2, 1, tzinfo=UTC))
    deal = str(uuid.uuid4())
    sh01 = [
        maker.deal_opened(deal, 5000),
        maker.make("visit.logged", {"decision_maker_met": True}, deal=deal),
        maker.make("call.logged", {"connected": True}, at=datetime(2026, 11, 10, 2, tzinfo=UTC)),
        maker.make("deal.stage_changed", {"to": "quote"}, deal=deal),
    ]
    hz01 = [EventMaker("HZ01-001").make("call.logged", {"connected": False})]
    assert push(client, company.agent("SH01"), sh01).status_code == 200
    assert push(client, company.agent("HZ01"), hz01).status_code == 200
    with app.app_context():
        conn = db.session.connection()
        before = _state(conn)
        branch, rep = _branch("SH01"), _rep_id("SH01-001")
        # Drift as a faulty release would leave it, at every level alike: a count that
        # never happened, a day's visits gone, and a deal in the wrong stage.
        upsert_rollups(conn, branch, {(rep, date(2026, 11, 4), "calls"): Decimal(3)})
        visits = conn.execute(
            text(
                "SELECT day, metric, value FROM daily_rollups WHERE branch_id = :b "
                "AND metric LIKE 'visits%'"
            ),
            {"b": branch.id},
        ).all()
        assert visits
        upsert_rollups(conn, branch, {(rep, day, metric): -value for day, metric, value in visits})
        conn.execute(text("UPDATE deals SET stage = 'won', amount = 1 WHERE id = :d"), {"d": deal})
        db.session.commit()
        assert _state(db.session.connection()) != before
        assert rebuild_branch("SH01") == len(sh01)
        db.session.commit()
        after = _state(db.session.connection())
        assert after == before
        assert after["units"] == _units(db.session.connection(), "daily_rollups")


def _same_stripe_branch(app, region: str, like: OrgUnit) -> tuple[OrgUnit, int]:
    """Add branches to ``region`` until one shares ``like``'s stripe; return it and its rep."""
    with app.app_context():
        for n in range(STRIPES):
            code = f"ST{n:02d}"
            row = {"region_code": region, "region_name": region.title()}
            row |= {"branch_code": code, "branch_name": code, "rep_code": f"{code}-001"}
            import_org([{**row, "rep_name": code}], "Asia/Shanghai")
            db.session.commit()
            branch = _branch(code)
            if branch.id % STRIPES == like.id % STRIPES:
                return branch, _rep_id(f"{code}-001")
    raise AssertionError("no branch on the same stripe")


def start_held_rebuild(app, held, errors: list) -> threading.Thread:
    """Start SH01's rebuild while ``held`` holds SH01's deals; return once it waits on them.

    The rebuild then holds the branch's write lock and no rollup row yet.
    """
    held.execute(
        text(
            "SELECT 1 FROM deals d JOIN org_units b ON b.id = d.branch_id "
            "WHERE b.code = 'SH01' FOR UPDATE OF d"
        )
    )
    rebuild = app_thread(app, errors, rebuild_branch, "SH01")
    rebuild.start()
    wait_until(lambda: lock_waiters(held) == 1)
    assert lock_waiters(held) == 1, "the rebuild never waited for the deal rows"
    return rebuild


def test_a_rebuild_and_a_push_on_the_same_stripe_do_not_deadlock(app, client, company):
    # SH01's rollups lost a week (drift the rebuild repairs). Another branch of its region,
    # on its stripe, pushes to that week and a later one, which adds to the same region and
    # HQ rows as SH01. The push starts while the rebuild waits on a deal row, and commits
    # once the rebuild waits on it: the rebuild must not hold a row the push goes on to take.
    maker = EventMaker("SH01-001")
    early, late = datetime(2026, 11, 3, 2, tzinfo=UTC), datetime(2026, 11, 11, 2, tzinfo=UTC)
    events = [
        maker.make("call.logged", {"connected": True}, at=early),
        maker.make("call.logged", {"connected": True}, at=late),
        maker.deal_opened(at=late),
    ]
    assert push(client, company.agent("SH01"), events).status_code == 200
    with app.app_context():
        sh01, rep = _branch("SH01"), _rep_id("SH01-001")
    other, other_rep = _same_stripe_branch(app, "EAST", sh01)
    early_day, late_day = early.date(), late.date()  # 10:00 in Shanghai: the same day
    with app.app_context():
        conn = db.session.connection()
        lost = conn.execute(
            text("SELECT metric, value FROM daily_rollups WHERE branch_id = :b AND day = :d"),
            {"b": sh01.id, "d": early_day},
        ).all()
        upsert_rollups(conn, sh01, {(rep, early_day, m): -v for m, v in lost})
        db.session.commit()
    errors: list[BaseException] = []
    pushed, commit = threading.Event(), threading.Event()

    def other_push() -> None:
        try:
            with app.app_context(), db.engine.connect() as conn:
                totals = {(other_rep, day, "calls"): Decimal(1) for day in (early_day, late_day)}
                upsert_rollups(conn, other, totals)
                pushed.set()
                commit.wait(30)
                conn.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    with app.app_context(), db.engine.connect() as held:
        rebuild = start_held_rebuild(app, held, errors)
        other_pushing = threading.Thread(target=other_push)
        other_pushing.start()
        wait_until(lambda: pushed.is_set() or lock_waiters(held) == 2)
        held.rollback()  # the rebuild goes on
        wait_until(lambda: lock_waiters(held) >= 1 or not rebuild.is_alive())
        commit.set()
        for thread in (rebuild, other_pushing):
            thread.join(30)
    assert errors == []
    upper = sorted(sh01.path_ids[:-1])  # the region and HQ
    with app.app_context():
        calls = db.session.execute(
            text(
                "SELECT unit_id, day, sum(value) FROM unit_rollups WHERE metric = 'calls' "
                "AND unit_id = ANY(:u) GROUP BY 1, 2 ORDER BY 1, 2"
            ),
            {"u": upper},
        ).all()
    assert calls == [(u, d, 2) for u in upper for d in (early_day, late_day)]


def test_the_stripe_compaction_waits_for_a_rebuild(app, client, company):
    # A moved branch's rebuild writes the shared rows once per row version, on each one's
    # stripe, in separate statements: the compaction, which takes a unit's rows of every
    # stripe in one order, could hold one the rebuild needs next. The two go one at a time.
    maker = EventMaker("SH01-001", start=datetime(2026, 11, 2, 2, tzinfo=UTC))
    events = [maker.deal_opened(), maker.make("call.logged", {"connected": True})]
    assert push(client, company.agent("SH01"), events).status_code == 200
    errors: list[BaseException] = []
    with app.app_context(), db.engine.connect() as held:
        rebuild = start_held_rebuild(app, held, errors)
        compaction = app_thread(app, errors, compact_unit_rollups, date(2026, 11, 20))
        compaction.start()
        wait_until(lambda: lock_waiters(held) == 2)
        assert lock_waiters(held) == 2, "the compaction did not wait for the rebuild"
        held.rollback()  # the rebuild goes on, then the compaction
        for thread in (rebuild, compaction):
            thread.join(30)
    assert errors == []
    with app.app_context():
        sh01 = _branch("SH01")
        assert sh01.id % STRIPES != 0  # else its rows were on stripe 0 with no compaction
        upper = sh01.path_ids[:-1]  # the region and HQ: the rows it folds
        striped, folded = db.session.execute(
            text(
                "SELECT count(*) FILTER (WHERE stripe <> 0), count(*) FILTER (WHERE stripe = 0) "
                "FROM unit_rollups WHERE unit_id = ANY(:u) AND day < '2026-11-18'"
            ),
            {"u": upper},
        ).one()
    assert (striped, folded > 0) == (0, True)  # it did its work once the rebuild was done
