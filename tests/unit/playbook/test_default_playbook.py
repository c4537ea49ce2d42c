"""The default playbook loads, and each of its rules fires on the events it is meant for.

Every event check runs twice: on the raw JSON an agent holds (floats, text
times) and on what ``load_event`` gives HQ (Decimals, datetimes, UUIDs).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.events import load_event
from shared.playbook import Sla, check_event, is_stalled, make_verdict, quota_shortfall
from shared.stages import DEFAULT_STAGES
from tests.unit.playbook.helpers import history

DEAL = str(uuid.uuid4())
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(params=["agent", "hq"])
def shape(request):
    """Return a function giving an event in the agent's or in HQ's form."""

    def make(type_: str, data: dict, at: str = "2026-11-23T10:00:00+08:00", **extra) -> dict:
        raw = {
            "id": str(uuid.uuid4()),
            "seq": 1,
            "type": type_,
            "occurred_at": at,
            "rep": "SH01-007",
            "deal": DEAL,
            "data": data,
            **extra,
        }
        raw = json.loads(json.dumps(raw))
        if request.param == "agent":
            return raw
        loaded, errors = load_event(raw)
        assert errors is None, errors
        return loaded

    return make


def broken(playbook, event, *priors) -> list[str]:
    return [v.rule_id for v in check_event(playbook, event, history(*priors))]


def test_the_default_playbook_has_the_standard_stages_and_every_rule_kind(default_playbook):
    assert default_playbook.version == 1
    assert default_playbook.stages == DEFAULT_STAGES
    kinds = {r.kind for r in default_playbook.rules}
    assert kinds == {"requires_prior", "required_fields", "approval", "sla", "quota", "stall"}
    assert set(default_playbook.definitions) >= {"sales_ready"}


def test_sales_ready_is_one_definition_for_marketing_and_sales(default_playbook):
    ready = default_playbook.definitions["sales_ready"]
    assert ready({"data": {"score": 60}}) and not ready({"data": {"score": 59}})
    assert not ready({"data": {}})


@pytest.mark.parametrize("score,expected", [(59, ["lead-handoff-sales-ready"]), (60, [])])
def test_a_lead_handed_over_before_it_is_sales_ready_is_flagged(
    default_playbook, shape, score, expected
):
    created = shape(
        "lead.created", {"source": "web", "score": score}, at="2026-11-20T09:00:00+08:00"
    )
    assigned = shape("lead.assigned", {"to_rep": "SH01-007"})
    assert broken(default_playbook, assigned, created) == expected


def test_a_quote_needs_an_earlier_visit_with_the_decision_maker(default_playbook, shape):
    quote = shape("quote.issued", {"amount": 5000, "currency": "CNY"})
    met = shape("visit.logged", {"decision_maker_met": True}, at="2026-11-20T15:00:00+08:00")
    not_met = shape("visit.logged", {"decision_maker_met": False}, at="2026-11-21T15:00:00+08:00")
    assert broken(default_playbook, quote) == ["quote-needs-decision-maker-visit"]
    assert broken(default_playbook, quote, not_met) == ["quote-needs-decision-maker-visit"]
    assert broken(default_playbook, quote, not_met, met) == []


def test_a_lost_deal_needs_the_reason_and_the_competitor(default_playbook, shape):
    partial = shape("deal.lost", {"loss_reason": "price", "competitor": {"name": "Rival"}})
    (verdict,) = check_event(default_playbook, partial, history())
    assert (verdict.rule_id, verdict.severity) == ("lost-deal-needs-reason-and-competitor", "block")
    assert verdict.fields == ("data.competitor.product", "data.competitor.price")
    full = shape(
        "deal.lost",
        {"loss_reason": "price", "competitor": {"name": "R", "product": "X1", "price": 990.5}},
    )
    assert broken(default_playbook, full) == []


@pytest.mark.parametrize(
    "type_,data,needs_approval",
    [
        ("quote.issued", {"amount": 5000, "currency": "CNY", "discount_pct": 15.5}, True),
        ("quote.issued", {"amount": 5000, "currency": "CNY", "discount_pct": 15}, False),
        ("quote.issued", {"amount": 1000000, "currency": "CNY"}, True),
        ("deal.opened", {"name": "ACME", "amount": "999999.99", "currency": "CNY"}, False),
        ("deal.opened", {"name": "ACME", "amount": "1000000.00", "currency": "CNY"}, True),
        ("deal.updated", {"amount": 2500000}, True),
        ("deal.updated", {"forecast_category": "commit"}, False),
    ],
)
def test_a_deep_discount_or_a_big_amount_needs_regional_approval(
    default_playbook, shape, type_, data, needs_approval
):
    visit = shape("visit.logged", {"decision_maker_met": True}, at="2026-11-20T15:00:00+08:00")
    verdicts = check_event(default_playbook, shape(type_, data), history(visit))
    approvals = [v for v in verdicts if v.kind == "approval"]
    assert bool(approvals) == needs_approval
    for v in approvals:
        assert (v.severity, v.approver) == ("block", "region_manager")


def test_an_assigned_lead_is_due_within_24_working_hours(default_playbook):
    (sla,) = default_playbook.rules_of_kind("sla")
    assert isinstance(sla, Sla)
    assigned = {"type": "lead.assigned", "data": {"to_rep": "SH01-007"}}
    assert sla.starts_on(assigned)
    assert sla.stops_on({"type": "call.logged", "data": {"connected": False}})
    assert not sla.stops_on({"type": "quote.issued", "data": {}})
    cal = default_playbook.calendars["default"]
    friday = datetime(2026, 11, 20, 17, tzinfo=SHANGHAI)
    status, due, late = sla.status(friday, None, friday + timedelta(days=1), cal)
    assert (status, due, late) == ("due", datetime(2026, 11, 25, 14, tzinfo=SHANGHAI), None)
    answered = datetime(2026, 11, 25, 15, tzinfo=SHANGHAI)
    assert sla.status(friday, answered, answered, cal) == ("failed", due, 3600.0)
    message = make_verdict(default_playbook, sla, assigned).message
    assert message["en"].startswith("Lead assigned to SH01-007:")


def test_the_national_day_holiday_stops_the_sla_clock(default_playbook):
    (sla,) = default_playbook.rules_of_kind("sla")
    start = datetime(2026, 9, 30, 17, tzinfo=SHANGHAI)
    _, due, _ = sla.status(start, None, start, default_playbook.calendars["default"])
    # 1 h on 30 Sep; 1-7 Oct are holidays; Thu 8 and Fri 9 Oct; Saturday 10 Oct is worked.
    assert due == datetime(2026, 10, 10, 14, tzinfo=SHANGHAI)


def test_reps_log_ten_visits_a_week(default_playbook):
    (quota,) = default_playbook.rules_of_kind("quota")
    assert (quota.per, quota.period, quota.minimum) == ("rep", "week", 10)
    assert quota.counts({"type": "visit.logged", "data": {"decision_maker_met": False}})
    assert not quota.counts({"type": "call.logged", "data": {}})
    assert quota_shortfall(7, quota.minimum) == 3
    facts = {"rep": "SH01-007", "count": 7, "min": quota.minimum}
    assert make_verdict(default_playbook, quota, facts).message == {
        "en": "SH01-007 logged 7 visits this week; the minimum is 10",
        "zh": "SH01-007 本周拜访 7 次,低于每周 10 次的要求",
    }


def test_an_open_deal_idle_for_14_days_is_stalled(default_playbook):
    (stall,) = default_playbook.rules_of_kind("stall")
    assert [s.name for s in default_playbook.stages if stall.watches(s)] == [
        "lead",
        "visit",
        "quote",
    ]
    last = datetime(2026, 11, 1, 10, tzinfo=SHANGHAI)
    assert not is_stalled(last, last + timedelta(days=13, hours=23), stall.days)
    assert is_stalled(last, last + timedelta(days=14), stall.days)


def test_events_no_rule_watches_pass_without_looking_at_priors(default_playbook, shape):
    priors = history()
    for type_, data in [
        ("visit.logged", {"decision_maker_met": True}),
        ("call.logged", {"connected": True}),
        ("payment.failed", {"amount": 10, "currency": "CNY"}),
    ]:
        assert check_event(default_playbook, shape(type_, data), priors) == []
    assert priors.calls == []
