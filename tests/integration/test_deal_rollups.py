"""Deal reports from rollups == the same figures computed straight from the deals.

Random event streams arrive in random batches and orders (hypothesis); then the
funnel and the per-rep metrics, which read only rollups, must equal a plain Python
computation over the projected deals for any period. Also: folding the stripes of
settled region and HQ rows changes no sum.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from hq_server.extensions import db
from hq_server.metrics import deal_rollups as dr
from hq_server.metrics.weeks import week_of
from hq_server.models import OrgUnit, Rep
from hq_server.models.rollups import STRIPES
from hq_server.services.compaction import compact_unit_rollups
from hq_server.services.ingest import upsert_rollups
from tests.conftest import reset_tables
from tests.factories import Company, EventMaker, app_thread, lock_waiters, push, wait_until
from tests.integration.test_rebuild import event_streams

TZ = ZoneInfo("Asia/Shanghai")
FUNNEL = ("lead", "visit", "quote", "won")


def _deals(app) -> list[dict]:
    with app.app_context():
        rows = db.session.execute(
            text(
                "SELECT r.code AS rep, d.stage, d.status, d.amount, d.opened_at, d.closed_at, "
                "d.reached_at FROM deals d LEFT JOIN reps r ON r.id = d.rep_id"
            )
        ).mappings()
        return [dict(r) for r in rows]


def _day(moment) -> date:
    return moment.astimezone(TZ).date()


def _expected(deals: list[dict], start: date, end: date) -> dict:
    """The funnel's figures by hand: counted deals are those whose opening arrived."""
    counted = [d for d in deals if d["rep"] and d["opened_at"]]
    cohort = [d for d in counted if start <= _day(d["opened_at"]) <= end]
    closed = [d for d in counted if d["closed_at"] and start <= _day(d["closed_at"]) <= end]
    entered = Counter(
        s
        for d in counted
        for s, at in d["reached_at"].items()
        if s in FUNNEL and start <= _day(datetime.fromisoformat(at)) <= end
    )
    return {
        "deals_opened": len(cohort),
        "reached": {s: sum(s in d["reached_at"] for d in cohort) for s in FUNNEL},
        "flow": {s: entered[s] for s in FUNNEL},
        "won": sum(d["status"] == "won" for d in closed),
        "lost": sum(d["status"] == "lost" for d in closed),
    }


def _by_rep(deals: list[dict], start: date, end: date) -> dict:
    out = {}
    for rep in {d["rep"] for d in deals if d["rep"] and d["opened_at"]}:
        mine = [d for d in deals if d["rep"] == rep and d["opened_at"]]
        won = [
            d
            for d in mine
            if d["status"] == "won" and d["closed_at"] and start <= _day(d["closed_at"]) <= end
        ]
        cycles = [(d["closed_at"] - d["opened_at"]).total_seconds() / 86400 for d in won]
        out[rep] = {
            "deals_opened": sum(start <= _day(d["opened_at"]) <= end for d in mine),
            "won": len(won),
            "won_amount": float(sum(d["amount"] or 0 for d in won)),
            "open_by_stage": {
                s: sum(d["status"] == "open" and d["stage"] == s for d in mine)
                for s in ("lead", "visit", "quote")
            },
            "cycles": cycles,
        }
    return out


def _within_buckets(estimate: float, values: list[float]) -> bool:
    """The estimate lies in the buckets of the middle value(s)."""
    ordered = sorted(values)
    low, high = ordered[(len(ordered) - 1) // 2], ordered[len(ordered) // 2]
    lo_edge = dr.EDGES[dr.bucket_of(low)]
    hi_index = dr.bucket_of(high) + 1
    hi_edge = dr.EDGES[hi_index] if hi_index < len(dr.EDGES) else float("inf")
    return lo_edge - 0.01 <= estimate <= hi_edge + 0.01


@settings(max_examples=20)
@given(
    stream=event_streams(),
    seed=st.integers(0, 2**32),
    first=st.integers(0, 25),
    days=st.integers(0, 25),
)
def test_deal_figures_from_rollups_equal_the_deals(app, stream, seed, first, days):
    rng = random.Random(seed)
    reset_tables(app)
    company = Company.create(app)
    client = app.test_client()
    arrivals = list(stream)
    rng.shuffle(arrivals)
    while arrivals:
        size = rng.randint(1, 8)
        batch, arrivals = arrivals[:size], arrivals[size:]
        push(client, company.agent("SH01"), batch)
    start = date(2026, 11, 1) + timedelta(days=first)
    end = start + timedelta(days=days)
    deals = _deals(app)
    want = _expected(deals, start, end)
    for unit, role in (
        ("SH01", "branch_manager"),
        ("EAST", "region_manager"),
        ("HQ", "hq_manager"),
    ):
        got = client.get(
            f"/api/v1/funnel?unit={unit}&from={start}&to={end}", headers=company.user(role)
        ).get_json()
        assert got["cohort"]["deals_opened"] == want["deals_opened"], unit
        assert {s["stage"]: s["reached"] for s in got["cohort"]["stages"]} == want["reached"]
        assert {s["stage"]: s["reached"] for s in got["flow"]["stages"]} == want["flow"]
        assert (got["closed"]["won"], got["closed"]["lost"]) == (want["won"], want["lost"])
    rows = client.get(
        f"/api/v1/metrics?unit=SH01&by=rep&from={start}&to={end}",
        headers=company.user("branch_manager"),
    ).get_json()["rows"]
    by_rep = {r["node"]: r for r in rows}
    for rep, expected in _by_rep(deals, start, end).items():
        row = by_rep[rep]
        for key in ("deals_opened", "won", "open_by_stage"):
            assert row[key] == expected[key], (rep, key)
        assert abs(row["won_amount"] - expected["won_amount"]) < 0.01
        cycles = expected["cycles"]
        if cycles:
            assert abs(row["cycle_days"]["mean"] - statistics.fmean(cycles)) < 1e-3
            assert _within_buckets(row["cycle_days"]["median"], cycles)
        else:
            assert row["cycle_days"] == {"mean": None, "median": None}


def _unit_sums(app) -> list[tuple]:
    """Return the non-zero sums per unit, day (or week) and metric, stripes added up."""
    with app.app_context():
        return db.session.execute(
            text(
                "SELECT 'day', unit_id, day, metric, sum(value) FROM unit_rollups "
                "GROUP BY 2, 3, 4 HAVING sum(value) <> 0 UNION ALL "
                "SELECT 'week', unit_id, week, metric, sum(value) FROM weekly_unit_rollups "
                "GROUP BY 2, 3, 4 HAVING sum(value) <> 0 ORDER BY 1, 2, 3, 4"
            )
        ).all()


def _stripes(app, before: date) -> int:
    """Return the region and HQ rows of settled days and weeks still on a stripe."""
    with app.app_context():
        return db.session.execute(
            text(
                "SELECT count(*) FROM (SELECT unit_id, stripe, day FROM unit_rollups "
                "UNION ALL SELECT unit_id, stripe, week + 6 FROM weekly_unit_rollups) x "
                "JOIN org_units u ON u.id = x.unit_id "
                "WHERE u.kind <> 'branch' AND x.stripe <> 0 AND x.day < :d"
            ),
            {"d": before},
        ).scalar()


def test_compaction_folds_settled_stripes_and_keeps_every_sum(app, client, company):
    start = datetime(2026, 11, 2, 2, tzinfo=UTC)
    for branch in ("SH01", "HZ01", "CD01"):
        events = EventMaker(f"{branch}-001", start=start)
        batch = [events.deal_opened(amount=100.0 * (i + 1)) for i in range(3)]
        batch += [events.make("visit.logged", {"decision_maker_met": True}) for _ in range(2)]
        assert push(client, company.agent(branch), batch).status_code == 200
    before = _unit_sums(app)
    today = date(2026, 11, 20)
    assert _stripes(app, today - timedelta(days=2)) > 0
    with app.app_context():
        done = compact_unit_rollups(today)
    assert done["units"] == 3  # EAST, WEST and HQ; branch rows keep their one stripe
    assert _unit_sums(app) == before
    assert _stripes(app, today - timedelta(days=2)) == 0
    # A late event for a folded day lands on its stripe again; the next run folds it in.
    late = EventMaker("HZ01-002", start=start)
    resp = push(client, company.agent("HZ01"), [late.deal_opened(amount=7.0)], agent="late")
    assert resp.status_code == 200
    after_push = _unit_sums(app)
    assert after_push != before
    with app.app_context():
        compact_unit_rollups(today)
    assert _unit_sums(app) == after_push
    assert _stripes(app, today - timedelta(days=2)) == 0


def test_compaction_and_a_push_to_the_same_unit_rows_do_not_deadlock(app, client, company):
    # A push writes a unit's weekly rows, then its daily ones, in one statement. The
    # compaction here starts while a push holds the first weekly row it writes, and must
    # wait there holding no daily row the push goes on to write.
    start = datetime(2026, 11, 2, 2, tzinfo=UTC)
    call = EventMaker("SH01-001", start=start).make("call.logged", {"connected": True})
    assert push(client, company.agent("SH01"), [call]).status_code == 200
    day = _day(datetime.fromisoformat(call["occurred_at"]))
    with app.app_context():
        branch = db.session.scalar(db.select(OrgUnit).where(OrgUnit.code == "SH01"))
        rep_id = db.session.scalar(db.select(Rep.id).where(Rep.code == "SH01-001"))
        upper = sorted(branch.path_ids[:-1])  # the region and HQ
        db.session.expunge(branch)
    errors: list[BaseException] = []

    with app.app_context(), db.engine.connect() as held:
        # The push's first upper-unit weekly row: the lowest key it writes there.
        held.execute(
            text(
                "SELECT 1 FROM weekly_unit_rollups WHERE unit_id = :u AND week = :w "
                "AND metric = 'calls' AND stripe = :s FOR UPDATE"
            ),
            {"u": upper[0], "w": week_of(day), "s": branch.id % STRIPES},
        ).one()
        compaction = app_thread(app, errors, compact_unit_rollups, date(2026, 11, 20))
        compaction.start()

        wait_until(lambda: lock_waiters(held) == 1)
        assert lock_waiters(held) == 1, "the compaction never waited"
        try:
            upsert_rollups(held, branch, {(rep_id, day, "calls"): Decimal(1)})
            held.commit()
        except Exception as exc:
            errors.append(exc)
        compaction.join(30)
    assert errors == []
    with app.app_context():
        calls = db.session.execute(
            text(
                "SELECT x.unit_id, sum(x.value), count(*) FROM unit_rollups x "
                "WHERE x.unit_id = ANY(:u) AND x.day = :d AND x.metric = 'calls' GROUP BY 1"
            ),
            {"u": upper, "d": day},
        ).all()
    assert sorted(calls) == [(u, 2, 1) for u in upper]  # both calls, folded into one row
