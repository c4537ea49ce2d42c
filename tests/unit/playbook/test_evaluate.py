"""Checking events: each event rule kind passes and fails as it should."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.playbook import Verdict, check_event, load_playbook, make_verdict
from tests.unit.playbook.helpers import MESSAGE, event, history, playbook_text

RULES = (
    "  - id: dm-visit\n"
    "    kind: requires_prior\n"
    "    applies_to: [quote.issued]\n"
    "    prior: {type: visit.logged, condition: data.decision_maker_met}\n"
    "    when: data.amount > 100\n" + MESSAGE + "  - id: any-call\n"
    "    kind: requires_prior\n"
    "    applies_to: [quote.issued]\n"
    "    prior: {type: call.logged}\n" + MESSAGE + "  - id: lost-why\n"
    "    kind: required_fields\n"
    "    applies_to: [deal.lost]\n"
    "    fields: [data.loss_reason, data.competitor.name, data.competitor.price, customer]\n"
    "    severity: block\n" + MESSAGE + "  - id: small-quote\n"
    "    kind: threshold\n"
    "    applies_to: [quote.issued]\n"
    "    condition: data.amount < 1000\n"
    "    message: {en: 'Quote of {data.amount} {data.currency} by {rep}: {{small}}',"
    " zh: '{data.discount_pct}报价过小'}\n"
    "  - id: big-discount\n"
    "    kind: approval\n"
    "    applies_to: [quote.issued, deal.opened]\n"
    "    condition: data.discount_pct > 15 or data.amount >= 1000000\n"
    "    approver: region_manager\n" + MESSAGE + "  - id: soft-approval\n"
    "    kind: approval\n"
    "    applies_to: [deal.opened]\n"
    "    condition: data.amount > 500000\n"
    "    approver: branch_manager\n"
    "    severity: warn\n" + MESSAGE
)
PLAYBOOK = load_playbook(playbook_text(RULES))

DM_VISIT = event("visit.logged", {"decision_maker_met": True}, at="2026-11-20T15:00:00+08:00")
CALL = event("call.logged", {"connected": True}, at="2026-11-19T15:00:00+08:00")


def quote(amount="5000", **data) -> dict:
    return event("quote.issued", {"amount": Decimal(amount), "currency": "CNY", **data})


def broken(verdicts: list[Verdict]) -> list[str]:
    return [v.rule_id for v in verdicts]


def test_a_quote_after_a_decision_maker_visit_and_a_call_passes():
    assert check_event(PLAYBOOK, quote(), history(DM_VISIT, CALL)) == []


def test_a_quote_without_the_earlier_events_breaks_both_rules():
    assert broken(check_event(PLAYBOOK, quote(), history())) == ["dm-visit", "any-call"]


def test_a_visit_without_the_decision_maker_does_not_count():
    visit = {**DM_VISIT, "data": {"decision_maker_met": False}}
    assert broken(check_event(PLAYBOOK, quote(), history(visit, CALL))) == ["dm-visit"]


@pytest.mark.parametrize("at", ["2026-11-23T10:00:00+08:00", "2026-11-23T02:00:01+00:00"])
def test_a_prior_at_the_same_moment_or_later_does_not_count(at):
    visit = {**DM_VISIT, "occurred_at": at}
    assert broken(check_event(PLAYBOOK, quote(), history(visit, CALL))) == ["dm-visit"]


def test_a_prior_in_another_zone_counts_by_the_instant():
    visit = {**DM_VISIT, "occurred_at": datetime.fromisoformat("2026-11-23T01:59:59+00:00")}
    assert check_event(PLAYBOOK, quote(), history(visit, CALL)) == []


def test_the_event_itself_is_never_its_own_prior():
    call = event("call.logged", {"connected": True})
    quote_event = quote()
    itself = {**call, "id": quote_event["id"], "occurred_at": "2026-11-01T10:00:00+08:00"}
    assert broken(check_event(PLAYBOOK, quote_event, history(DM_VISIT, itself))) == ["any-call"]


def test_priors_of_other_deals_do_not_count():
    visit = {**DM_VISIT, "deal": "deal-2"}
    assert broken(check_event(PLAYBOOK, quote(), history(visit, CALL))) == ["dm-visit"]


def test_an_event_without_a_deal_has_no_priors():
    priors = history(DM_VISIT, CALL)
    dealless = {k: v for k, v in quote().items() if k != "deal"}
    assert broken(check_event(PLAYBOOK, dealless, priors)) == ["dm-visit", "any-call"]
    assert priors.calls == []


def test_priors_are_fetched_once_with_every_type_the_rules_need():
    priors = history(DM_VISIT, CALL)
    check_event(PLAYBOOK, quote(), priors)
    assert priors.calls == [("deal-1", ("visit.logged", "call.logged"))]


def test_the_when_guard_skips_the_rule():
    assert broken(check_event(PLAYBOOK, quote("50"), history(CALL))) == ["small-quote"]


def test_priors_are_not_fetched_for_events_without_such_rules():
    priors = history()
    assert check_event(PLAYBOOK, event("visit.logged", {"decision_maker_met": True}), priors) == []
    assert check_event(PLAYBOOK, event("payment.failed"), priors) == []
    assert priors.calls == []


def test_an_event_with_no_applicable_rules_is_checked_by_a_lookup():
    assert PLAYBOOK.event_rules("payment.failed") == ()
    assert PLAYBOOK.event_rules("no.such.type") == ()
    assert [r.id for r in PLAYBOOK.event_rules("deal.opened")] == ["big-discount", "soft-approval"]


def test_prior_times_may_be_text_or_datetimes_and_bad_ones_do_not_count():
    as_datetime = {**DM_VISIT, "occurred_at": datetime.fromisoformat(DM_VISIT["occurred_at"])}
    naive = {**CALL, "occurred_at": "2026-11-19T15:00:00"}
    verdicts = check_event(PLAYBOOK, quote(), history(as_datetime, naive))
    assert broken(verdicts) == ["any-call"]


def test_an_event_without_a_usable_time_is_refused():
    with pytest.raises(ValueError, match="UTC offset"):
        check_event(PLAYBOOK, {**quote(), "occurred_at": None}, history())


LOST = {
    "loss_reason": "price",
    "competitor": {"name": "Rival", "product": "X1", "price": Decimal("990")},
}


def test_a_lost_deal_with_every_field_passes():
    assert check_event(PLAYBOOK, event("deal.lost", LOST, customer="ACME"), history()) == []


def test_a_lost_deal_names_each_missing_field_and_blocks():
    data = {"loss_reason": "  ", "competitor": {"name": "Rival"}}
    (verdict,) = check_event(PLAYBOOK, event("deal.lost", data), history())
    assert verdict.rule_id == "lost-why"
    assert verdict.severity == "block"
    assert verdict.fields == ("data.loss_reason", "data.competitor.price", "customer")


def test_a_threshold_fires_only_when_its_condition_holds_and_warns_by_default():
    (verdict,) = check_event(PLAYBOOK, quote("999.99"), history(DM_VISIT, CALL))
    assert (verdict.rule_id, verdict.kind, verdict.severity) == ("small-quote", "threshold", "warn")
    assert check_event(PLAYBOOK, quote("1000"), history(DM_VISIT, CALL)) == []


def test_messages_fill_placeholders_from_the_event_and_leave_missing_ones_empty():
    (verdict,) = check_event(PLAYBOOK, quote("999.90"), history(DM_VISIT, CALL))
    assert verdict.message == {
        "en": "Quote of 999.90 CNY by SH01-007: {small}",
        "zh": "报价过小",
    }


@pytest.mark.parametrize(
    "data,expected",
    [
        ({"discount_pct": Decimal("15.01")}, ["big-discount"]),
        ({"discount_pct": Decimal("15")}, []),
        ({"discount_pct": 16.0}, ["big-discount"]),
        ({"discount_pct": "16"}, ["big-discount"]),
        ({"amount": Decimal("1000000")}, ["big-discount", "soft-approval"]),
        ({"amount": Decimal("999999.99")}, ["soft-approval"]),
        ({"amount": 400000}, []),
    ],
)
def test_approval_rules_route_big_deals_to_their_approver(data, expected):
    opened = event("deal.opened", {"name": "x", "amount": 1, "currency": "CNY", **data})
    verdicts = check_event(PLAYBOOK, opened, history())
    assert broken(verdicts) == expected
    for v in verdicts:
        assert (v.kind, v.severity, v.approver) == {
            "big-discount": ("approval", "block", "region_manager"),
            "soft-approval": ("approval", "warn", "branch_manager"),
        }[v.rule_id]


def test_a_verdict_is_plain_json():
    (verdict,) = check_event(PLAYBOOK, event("deal.lost", {}), history())
    assert json.loads(json.dumps(verdict.as_dict())) == {
        "rule_id": "lost-why",
        "kind": "required_fields",
        "severity": "block",
        "version": 3,
        "message": {"en": "broken", "zh": "违规"},
        "approver": None,
        "fields": [
            "data.loss_reason",
            "data.competitor.name",
            "data.competitor.price",
            "customer",
        ],
    }


def test_a_timer_verdict_fills_its_message_from_the_facts_given():
    playbook = load_playbook(
        playbook_text(
            "  - id: visits\n    kind: quota\n    event: {type: visit.logged}\n"
            "    period: week\n    min: 10\n"
            "    message: {en: '{rep}: {count} of {min}', zh: '{rep} 拜访 {count}/{min}'}\n"
        )
    )
    rule = playbook.rule("visits")
    verdict = make_verdict(playbook, rule, {"rep": "SH01-007", "count": 7, "min": 10})
    assert verdict.message == {"en": "SH01-007: 7 of 10", "zh": "SH01-007 拜访 7/10"}
    assert (verdict.kind, verdict.approver, verdict.version) == ("quota", None, 3)


PRIORS = st.lists(
    st.builds(
        lambda type_, met, day: event(
            type_, {"decision_maker_met": met}, at=f"2026-11-{day:02d}T10:00:00+08:00"
        ),
        st.sampled_from(["visit.logged", "call.logged"]),
        st.booleans(),
        st.integers(15, 30),
    ),
    max_size=8,
)


@given(priors=PRIORS, seed=st.randoms(use_true_random=False))
def test_verdicts_do_not_depend_on_the_order_priors_come_in(priors, seed):
    shuffled = list(priors)
    seed.shuffle(shuffled)
    first = check_event(PLAYBOOK, quote(), history(*priors))
    again = check_event(PLAYBOOK, quote(), history(*shuffled))
    assert first == again
    quoted = quote()["occurred_at"]  # same-width ISO texts in one zone sort by time
    has_visit = any(
        p["type"] == "visit.logged"
        and p["data"]["decision_maker_met"]
        and p["occurred_at"] < quoted
        for p in priors
    )
    assert ("dm-visit" in broken(first)) == (not has_visit)
