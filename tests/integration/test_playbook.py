"""The playbook at HQ: publish, judge pushed events, block and approve, compliance, pull."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from hq_server.extensions import db
from tests.factories import EventMaker, lock_waiters, push, wait_until

DEFAULT = (Path(__file__).resolve().parents[2] / "config" / "playbook.default.yaml").read_text()
QUOTE_RULE = "quote-needs-decision-maker-visit"
LOST_RULE = "lost-deal-needs-reason-and-competitor"
APPROVAL_RULE = "big-deal-needs-regional-approval"


@pytest.fixture
def published(client, company):
    resp = client.post("/api/v1/playbooks", data=DEFAULT, headers=company.user("hq_manager"))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


@pytest.fixture
def maker(published):
    # Events after publication: rules are not retroactive.
    return EventMaker("SH01-001", start=datetime.now(UTC))


def _scalar(app, sql, **params):
    with app.app_context():
        return db.session.execute(text(sql), params).scalar()


def test_publishing_needs_an_hq_role_and_a_newer_valid_version(client, company, published):
    assert published["version"] == 1 and published["published_by"] == "hq_manager-user"
    again = client.post("/api/v1/playbooks", data=DEFAULT, headers=company.user("hq_manager"))
    assert again.status_code == 422 and "not newer" in again.get_json()["message"]
    broken = DEFAULT.replace("version: 1", "version: 2").replace("kind: quota", "kind: quotum")
    resp = client.post("/api/v1/playbooks", data=broken, headers=company.user("admin"))
    assert resp.status_code == 422
    errors = resp.get_json()["errors"]["playbook"]
    line = next(i for i, text_ in enumerate(broken.splitlines(), 1) if "kind: quotum" in text_)
    assert any(e["line"] == line for e in errors), errors
    current = client.get("/api/v1/playbooks/current", headers=company.agent("SH01")).get_json()
    assert current["version"] == 1 and current["source"] == DEFAULT
    audit = client.get("/api/v1/playbooks", headers=company.user("admin")).get_json()
    assert [(v["version"], v["published_by"]) for v in audit["versions"]] == [
        (1, "hq_manager-user")
    ]


def test_a_quote_without_a_decision_maker_visit_is_flagged_but_counted(app, client, company, maker):
    deal = str(uuid.uuid4())
    events = [
        maker.deal_opened(deal),
        maker.make("quote.issued", {"amount": 900, "currency": "CNY"}, deal=deal),
    ]
    results = push(client, company.agent("SH01"), events).get_json()["results"]
    assert [r["status"] for r in results] == ["accepted", "accepted"]
    assert [v["rule_id"] for v in results[1]["violations"]] == [QUOTE_RULE]
    assert results[1]["violations"][0]["message"]["zh"]
    assert "pending" not in results[1]
    assert _scalar(app, "SELECT count(*) FROM violations WHERE rule_id = :r", r=QUOTE_RULE) == 1
    assert _scalar(app, "SELECT stage FROM deals WHERE id = :d", d=deal) == "lead"
    assert _scalar(app, "SELECT reached_at ? 'quote' FROM deals WHERE id = :d", d=deal) is True


def test_a_quote_after_a_decision_maker_visit_passes(client, company, maker):
    deal = str(uuid.uuid4())
    events = [
        maker.deal_opened(deal),
        maker.make("visit.logged", {"decision_maker_met": True}, deal=deal),
        maker.make("quote.issued", {"amount": 900, "currency": "CNY"}, deal=deal),
    ]
    results = push(client, company.agent("SH01"), events).get_json()["results"]
    assert all("violations" not in r for r in results)


def test_a_blocked_lost_deal_is_stored_but_counts_nowhere(app, client, company, maker):
    deal = str(uuid.uuid4())
    push(client, company.agent("SH01"), [maker.deal_opened(deal)])
    lost = maker.make("deal.lost", {"loss_reason": "price"}, deal=deal)
    result = push(client, company.agent("SH01"), [lost]).get_json()["results"][0]
    assert result["status"] == "accepted" and result["pending"] is True
    assert result["violations"][0]["fields"] == [
        "data.competitor.name",
        "data.competitor.product",
        "data.competitor.price",
    ]
    assert _scalar(app, "SELECT status FROM events WHERE id = :i", i=lost["id"]) == "pending"
    assert _scalar(app, "SELECT status FROM deals WHERE id = :d", d=deal) == "open"
    assert _scalar(app, "SELECT count(*) FROM daily_rollups WHERE metric = 'deals_lost'") == 0


def test_a_big_discount_waits_for_the_region_manager(app, client, company, maker):
    deal = str(uuid.uuid4())
    push(
        client,
        company.agent("SH01"),
        [
            maker.deal_opened(deal),
            maker.make("visit.logged", {"decision_maker_met": True}, deal=deal),
        ],
    )
    quote = maker.make(
        "quote.issued", {"amount": 900, "currency": "CNY", "discount_pct": 20}, deal=deal
    )
    result = push(client, company.agent("SH01"), [quote]).get_json()["results"][0]
    assert result["pending"] is True
    pending = client.get("/api/v1/approvals", headers=company.user("region_manager")).get_json()
    assert [a["event_id"] for a in pending["approvals"]] == [quote["id"]]
    approval_id = pending["approvals"][0]["id"]
    staff = client.post(
        f"/api/v1/approvals/{approval_id}",
        json={"decision": "approve"},
        headers=company.user("branch_manager"),
    )
    assert staff.status_code == 403
    assert _scalar(app, "SELECT reached_at ? 'quote' FROM deals WHERE id = :d", d=deal) is False
    ok = client.post(
        f"/api/v1/approvals/{approval_id}",
        json={"decision": "approve", "note": "strategic account"},
        headers=company.user("region_manager"),
    )
    assert ok.status_code == 200 and ok.get_json()["status"] == "approved"
    assert _scalar(app, "SELECT status FROM events WHERE id = :i", i=quote["id"]) == "counted"
    assert _scalar(app, "SELECT reached_at ? 'quote' FROM deals WHERE id = :d", d=deal) is True
    assert _scalar(app, "SELECT sum(value) FROM daily_rollups WHERE metric = 'quotes'") == 1
    assert (
        _scalar(app, "SELECT status FROM violations WHERE rule_id = :r", r=APPROVAL_RULE)
        == "resolved"
    )
    twice = client.post(
        f"/api/v1/approvals/{approval_id}",
        json={"decision": "refuse"},
        headers=company.user("hq_manager"),
    )
    assert twice.status_code == 403
    pulled = client.get("/api/v1/sync/pull", headers=company.agent("SH01")).get_json()
    assert [(d["event_id"], d["status"]) for d in pulled["decisions"]] == [
        (quote["id"], "approved")
    ]


def test_events_before_publication_are_not_judged(client, company, published):
    old = EventMaker("SH01-001", start=datetime(2026, 1, 5, tzinfo=UTC))
    deal = str(uuid.uuid4())
    results = push(
        client,
        company.agent("SH01"),
        [
            old.deal_opened(deal),
            old.make("quote.issued", {"amount": 1, "currency": "CNY"}, deal=deal),
        ],
    ).get_json()["results"]
    assert all("violations" not in r for r in results)


def test_compliance_counts_checked_and_violated_per_rule(client, company, maker):
    deals = [str(uuid.uuid4()) for _ in range(3)]
    events = [maker.deal_opened(d) for d in deals]
    events.append(maker.make("visit.logged", {"decision_maker_met": True}, deal=deals[0]))
    events += [maker.make("quote.issued", {"amount": 5, "currency": "CNY"}, deal=d) for d in deals]
    push(client, company.agent("SH01"), events)
    today = datetime.now(UTC).date()
    body = client.get(
        f"/api/v1/compliance?unit=EAST&from={today - timedelta(days=2)}"
        f"&to={today + timedelta(days=1)}",
        headers=company.user("region_manager"),
    ).get_json()
    rules = {r["rule_id"]: r for r in body["rules"]}
    assert (rules[QUOTE_RULE]["checked"], rules[QUOTE_RULE]["violated"]) == (3, 2)
    assert rules[QUOTE_RULE]["compliance"] == pytest.approx(1 / 3)
    listed = client.get(
        f"/api/v1/violations?unit=SH01&rule={QUOTE_RULE}&from={today}",
        headers=company.user("branch_manager"),
    ).get_json()["violations"]
    assert len(listed) == 2 and {v["status"] for v in listed} == {"open"}
    ack = client.post(
        f"/api/v1/violations/{listed[0]['id']}/acknowledge",
        json={"note": "coaching booked"},
        headers=company.user("branch_manager"),
    )
    assert ack.get_json()["status"] == "acknowledged"
    assert ack.get_json()["note"] == "coaching booked"


def test_the_pull_sends_the_playbook_only_when_the_agent_is_behind(client, company, published):
    fresh = client.get("/api/v1/sync/pull", headers=company.agent("SH01")).get_json()
    assert fresh["playbook"]["version"] == 1 and fresh["playbook_version"] == 1
    same = client.get(
        "/api/v1/sync/pull?playbook_version=1", headers=company.agent("SH01")
    ).get_json()
    assert same["playbook"] is None and same["playbook_version"] == 1


def test_a_resent_event_opens_no_second_violation(app, client, company, maker):
    deal = str(uuid.uuid4())
    events = [
        maker.deal_opened(deal),
        maker.make("quote.issued", {"amount": 5, "currency": "CNY"}, deal=deal),
    ]
    push(client, company.agent("SH01"), events)
    push(client, company.agent("SH01"), events)
    assert _scalar(app, "SELECT count(*) FROM violations") == 1


def test_an_agent_on_an_old_version_is_judged_by_the_version_in_force_when_it_happened(
    app, client, company, published
):
    with app.app_context():
        db.session.execute(text("UPDATE playbooks SET published_at = '2026-01-01T00:00:00Z'"))
        db.session.commit()
    lenient = DEFAULT.replace("version: 1", "version: 2").replace(
        "applies_to: [quote.issued]\n    prior: {type: visit.logged",
        "applies_to: [deal.won]\n    prior: {type: visit.logged",
    )
    assert (
        client.post(
            "/api/v1/playbooks", data=lenient, headers=company.user("hq_manager")
        ).status_code
        == 201
    )
    before, after = (
        EventMaker("SH01-001", start=datetime(2026, 11, 2, tzinfo=UTC)),
        EventMaker("SH01-001", start=datetime.now(UTC)),
    )
    d1, d2 = str(uuid.uuid4()), str(uuid.uuid4())
    old = [
        before.deal_opened(d1, playbook_version=1),
        before.make("quote.issued", {"amount": 5, "currency": "CNY"}, deal=d1, playbook_version=1),
    ]
    new = [
        after.deal_opened(d2, playbook_version=1),
        after.make("quote.issued", {"amount": 5, "currency": "CNY"}, deal=d2, playbook_version=1),
    ]
    old_result = push(client, company.agent("SH01"), old).get_json()["results"][1]
    new_result = push(client, company.agent("SH01"), new).get_json()["results"][1]
    assert [v["version"] for v in old_result["violations"]] == [1]
    assert "violations" not in new_result  # v2 no longer asks for a visit before a quote
    diff = client.get("/api/v1/playbooks/diff", headers=company.user("hq_manager")).get_json()
    assert (diff["from"], diff["to"]) == (1, 2)
    assert "+    applies_to: [deal.won]" in diff["diff"]
    assert (
        _scalar(app, "SELECT playbook_version FROM events WHERE id = :i", i=new[1]["id"]) == 1
    )  # what the agent checked against stays on record


def test_a_rebuild_keeps_compliance_counts_and_pending_events_out(app, client, company, maker):
    from hq_server.services.rebuild import rebuild_branch

    deal = str(uuid.uuid4())
    push(
        client,
        company.agent("SH01"),
        [
            maker.deal_opened(deal),
            maker.make("quote.issued", {"amount": 5, "currency": "CNY"}, deal=deal),
            maker.make("deal.lost", {"loss_reason": "price"}, deal=deal),
        ],
    )  # blocked: pending

    def snapshot():
        return (
            _scalar(app, "SELECT sum(value) FROM daily_rollups WHERE metric LIKE 'rule_%'"),
            _scalar(app, "SELECT status FROM deals WHERE id = :d", d=deal),
            _scalar(app, "SELECT count(*) FROM daily_rollups WHERE metric = 'deals_lost'"),
        )

    before = snapshot()
    with app.app_context():
        rebuild_branch("SH01")
        db.session.commit()
    assert snapshot() == before == (before[0], "open", 0) and before[0] > 0


def test_an_approval_waits_for_a_rebuild_of_its_branch(app, client, company, maker):
    # A rebuild replaces the branch's deals; an approval that went on meanwhile would
    # fold its event into a deal the rebuild had just taken away.
    from hq_server.services.rebuild import rebuild_branch
    from tests.integration.test_rebuild import _state, start_held_rebuild

    deal = str(uuid.uuid4())
    opened = [
        maker.deal_opened(deal),
        maker.make("visit.logged", {"decision_maker_met": True}, deal=deal),
    ]
    assert push(client, company.agent("SH01"), opened).status_code == 200
    quote = maker.make(
        "quote.issued", {"amount": 900, "currency": "CNY", "discount_pct": 20}, deal=deal
    )
    assert push(client, company.agent("SH01"), [quote]).get_json()["results"][0]["pending"]
    pending = client.get("/api/v1/approvals", headers=company.user("region_manager")).get_json()
    approval_id = pending["approvals"][0]["id"]
    errors: list[BaseException] = []
    answers: list[int] = []

    def approve() -> None:
        answer = app.test_client().post(
            f"/api/v1/approvals/{approval_id}",
            json={"decision": "approve"},
            headers=company.user("region_manager"),
        )
        answers.append(answer.status_code)

    with app.app_context(), db.engine.connect() as held:
        rebuild = start_held_rebuild(app, held, errors)
        approving = threading.Thread(target=approve)
        approving.start()
        wait_until(lambda: lock_waiters(held) == 2)
        assert lock_waiters(held) == 2, "the approval never waited"
        held.rollback()
        for thread in (rebuild, approving):
            thread.join(30)
    assert errors == [] and answers == [200]
    assert _scalar(
        app,
        "SELECT reached_at ? 'quote' AND opened_at IS NOT NULL AND event_count = 3 "
        "FROM deals WHERE id = :d",
        d=deal,
    )
    with app.app_context():
        approved = _state(db.session.connection())
        rebuild_branch("SH01")
        db.session.commit()
        assert _state(db.session.connection()) == approved


def test_the_rules_read_each_event_of_a_deal_once(app, client, company, maker):
    """A push judges its events after storing them: its own events are not read back too."""
    from hq_server.services import rules
    from shared.events import load_event

    opened = maker.deal_opened()
    visit = maker.make("visit.logged", {"decision_maker_met": True}, deal=opened["deal"])
    assert push(client, company.agent("SH01"), [opened, visit]).status_code == 200
    with app.app_context():
        # The visit as its own push judged it: stored already, and in the batch.
        history = rules._deal_history(db.session.connection(), [load_event(visit)[0]])
    assert sorted(e["id"] for e in history[opened["deal"]]) == sorted([opened["id"], visit["id"]])
