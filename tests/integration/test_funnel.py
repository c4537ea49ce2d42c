"""GET /api/v1/funnel: numbers from rollups and projections, scoped by role."""

from __future__ import annotations

import uuid

import pytest

from tests.factories import EventMaker, push

PERIOD = "from=2026-11-01&to=2026-11-30"


def _story(client, company):
    """SH01: won, lost after a visit, just opened. HZ01: opened. CD01: won directly."""
    sh = EventMaker("SH01-001")
    d1, d2, d3 = (str(uuid.uuid4()) for _ in range(3))
    push(
        client,
        company.agent("SH01"),
        [
            sh.deal_opened(d1),
            sh.make("visit.logged", {"decision_maker_met": True}, deal=d1),
            sh.make("quote.issued", {"amount": 900, "currency": "CNY"}, deal=d1),
            sh.make("deal.won", {"amount": 950}, deal=d1),
            sh.deal_opened(d2),
            sh.make("visit.logged", {"decision_maker_met": True}, deal=d2),
            sh.make("deal.lost", {"loss_reason": "price"}, deal=d2),
            sh.deal_opened(d3),
            sh.make("visit.logged", {"decision_maker_met": False}, deal=d3),
            sh.make("call.logged", {"connected": True, "reached_decision_maker": True}),
        ],
    )
    hz = EventMaker("HZ01-001")
    push(client, company.agent("HZ01"), [hz.deal_opened()])
    cd = EventMaker("CD01-001")
    d4 = str(uuid.uuid4())
    push(client, company.agent("CD01"), [cd.deal_opened(d4), cd.make("deal.won", deal=d4)])


def _funnel(client, headers, unit, period=PERIOD):
    return client.get(f"/api/v1/funnel?unit={unit}&{period}", headers=headers)


def test_the_funnel_counts_reached_stages_including_lost_deals(client, company):
    _story(client, company)
    body = _funnel(client, company.user("hq_manager"), "HQ").get_json()
    stages = {s["stage"]: s for s in body["cohort"]["stages"]}
    assert body["cohort"]["deals_opened"] == 5
    assert {k: v["reached"] for k, v in stages.items()} == {
        "lead": 5,
        "visit": 3,
        "quote": 2,
        "won": 2,
    }
    assert stages["lead"]["conversion_to_next"] == pytest.approx(3 / 5)
    assert stages["visit"]["conversion_to_next"] == pytest.approx(2 / 3)
    assert stages["quote"]["conversion_to_next"] == pytest.approx(1.0)
    assert stages["won"]["conversion_to_next"] is None
    assert body["closed"] == {"won": 2, "lost": 1, "win_rate": pytest.approx(2 / 3)}
    assert body["activity"]["visits"] == 3
    assert body["activity"]["visits_decision_maker"] == 2
    assert body["activity"]["calls_connected"] == 1
    assert body["activity"]["won_amount"] == 950


def test_a_region_sees_only_its_branches(client, company):
    _story(client, company)
    east = _funnel(client, company.user("region_manager"), "EAST").get_json()
    assert east["cohort"]["deals_opened"] == 4
    assert east["closed"] == {"won": 1, "lost": 1, "win_rate": 0.5}
    west = _funnel(client, company.user("hq_manager"), "WEST").get_json()
    assert west["cohort"]["deals_opened"] == 1


def test_a_period_without_deals_has_no_rates(client, company):
    _story(client, company)
    body = _funnel(
        client, company.user("hq_manager"), "HQ", "from=2025-01-01&to=2025-01-31"
    ).get_json()
    assert body["cohort"]["deals_opened"] == 0
    assert body["closed"]["win_rate"] is None
    assert all(s["conversion_to_next"] is None for s in body["cohort"]["stages"])


@pytest.mark.parametrize(
    "query,field",
    [
        ("unit=HQ&from=2026-13-01", "from"),
        ("unit=HQ&from=2026-11-30&to=2026-11-01", "from"),
        ("from=2026-11-01", "unit"),
    ],
)
def test_bad_query_arguments_get_field_errors(client, company, query, field):
    resp = client.get(f"/api/v1/funnel?{query}", headers=company.user("hq_manager"))
    assert resp.status_code == 422
    assert resp.get_json()["code"] == "invalid"
    assert field in resp.get_json()["errors"]


def test_the_flow_funnel_counts_entries_in_the_period_and_time_to_next(client, company):
    _story(client, company)
    body = _funnel(client, company.user("hq_manager"), "HQ").get_json()
    flow = {s["stage"]: s["reached"] for s in body["flow"]["stages"]}
    assert flow == {"lead": 5, "visit": 3, "quote": 2, "won": 2}
    assert "mixes cohorts" in body["flow"]["label"]
    lead = body["cohort"]["stages"][0]
    assert lead["median_days_to_next"] is not None and lead["median_days_to_next"] >= 0
    nothing = _funnel(
        client, company.user("hq_manager"), "HQ", "from=2026-12-01&to=2026-12-31"
    ).get_json()
    assert all(s["reached"] == 0 for s in nothing["flow"]["stages"])
