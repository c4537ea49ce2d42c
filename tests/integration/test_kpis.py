"""KPIs per node: activity, telemarketing rates, cycle, velocity, deltas; CSV downloads."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import EventMaker, push

NOV = datetime(2026, 11, 2, 1, tzinfo=UTC)
OCT = datetime(2026, 10, 5, 1, tzinfo=UTC)


def _story(client, company):
    rep = EventMaker("SH01-001")
    won, lost, open_ = (str(uuid.uuid4()) for _ in range(3))
    october_win = str(uuid.uuid4())
    push(
        client,
        company.agent("SH01"),
        [
            rep.deal_opened(october_win, at=OCT),
            rep.make("deal.won", {"amount": 500}, deal=october_win, at=OCT + timedelta(days=2)),
            rep.deal_opened(won, at=NOV),
            rep.make(
                "call.logged",
                {"connected": True, "reached_decision_maker": True, "presented": True},
                deal=won,
                at=NOV + timedelta(hours=1),
            ),
            rep.make("call.logged", {"connected": False}, at=NOV + timedelta(hours=2)),
            rep.make("call.logged", {"connected": True}, at=NOV + timedelta(hours=3)),
            rep.make("call.logged", {"connected": False}, at=NOV + timedelta(hours=4)),
            rep.make(
                "visit.logged", {"decision_maker_met": True}, deal=won, at=NOV + timedelta(days=1)
            ),
            rep.make(
                "quote.issued",
                {"amount": 1000, "currency": "CNY"},
                deal=won,
                at=NOV + timedelta(days=2),
            ),
            rep.make("deal.won", {"amount": 1000}, deal=won, at=NOV + timedelta(days=4)),
            rep.deal_opened(lost, at=NOV),
            rep.make("deal.lost", {"loss_reason": "price"}, deal=lost, at=NOV + timedelta(days=6)),
            rep.deal_opened(open_, at=NOV),
            rep.make(
                "visit.logged",
                {"decision_maker_met": False},
                deal=open_,
                at=NOV + timedelta(days=1),
            ),
            rep.make("deal.stage_changed", {"to": "visit"}, deal=open_, at=NOV + timedelta(days=1)),
        ],
    )


def test_kpis_of_a_branch_with_the_previous_period(client, company):
    _story(client, company)
    body = client.get(
        "/api/v1/metrics?unit=EAST&by=branch&from=2026-11-01&to=2026-11-30",
        headers=company.user("region_manager"),
    ).get_json()
    (row,) = [r for r in body["rows"] if r["node"] == "SH01"]
    assert (row["won"], row["lost"], row["win_rate"]) == (1, 1, 0.5)
    assert row["activity"]["calls"] == 4 and row["activity"]["visits"] == 2
    k = row["kpis"]
    assert k["contact_rate"] == 0.5  # 2 of 4 calls connected
    assert k["reachable_rate"] == 0.5 and k["presentation_rate"] == 0.5  # 1 of 2 connected
    assert k["hit_rate"] == 1.0  # 1 won / 1 quote
    assert k["dm_visit_rate"] == 0.5
    assert k["revenue_per_rep"] == 500.0 and k["orders_per_rep"] == 0.5  # 2 reps in SH01
    assert row["cycle_days"]["mean"] == pytest.approx(4.0)
    # Velocity: 1 open qualified deal x 0.5 win rate x 1000 average won / 4 days.
    assert row["velocity_per_day"] == pytest.approx(125.0)
    assert body["previous_period"] == {"from": "2026-10-02", "to": "2026-10-31"}
    assert row["change"]["won"] == {"previous": 1, "change": 0, "change_pct": 0.0}
    assert row["change"]["won_amount"]["change_pct"] == pytest.approx(1.0)


def test_tables_download_as_csv(client, company):
    _story(client, company)
    resp = client.get(
        "/api/v1/metrics?unit=EAST&by=rep&from=2026-11-01&to=2026-11-30&format=csv",
        headers=company.user("region_manager"),
    )
    assert resp.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    (sh01,) = [r for r in rows if r["node"] == "SH01-001"]
    assert sh01["won"] == "1" and sh01["kpis.contact_rate"] == "0.5"
    funnel = client.get(
        "/api/v1/funnel?unit=SH01&from=2026-11-01&to=2026-11-30&format=csv",
        headers=company.user("branch_manager"),
    )
    lines = funnel.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0] == (
        "stage,reached,next_stage,conversion_to_next,median_days_to_next,mean_days_to_next"
    )
    assert lines[1].startswith("lead,3,visit,")


def test_targets_are_phased_and_attained(client, company):
    _story(client, company)
    hq = company.user("hq_manager")

    def set_target(distribution):
        body = {
            "unit": "SH01",
            "metric": "won_amount",
            "period": "quarter",
            "start": "2026-10-01",
            "value": 9000,
            "distribution": distribution,
        }
        return client.post("/api/v1/targets", json=body, headers=hq)

    assert set_target([20, 50, 30]).status_code == 201
    assert set_target([50, 60, 30]).status_code == 422  # does not sum to 100
    body = client.get(
        "/api/v1/targets?unit=SH01&from=2026-11-01&to=2026-11-30",
        headers=company.user("branch_manager"),
    ).get_json()
    (row,) = body["targets"]
    assert row["target"] == pytest.approx(4500)  # 50 % of 9000 falls in November
    assert row["achieved"] == 1000 and row["attainment"] == pytest.approx(1000 / 4500)
