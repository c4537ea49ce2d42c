"""The branch agent and HQ give identical verdicts on the same events (hypothesis)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from branch_agent.outbox import Outbox
from branch_agent.recorder import local_verdicts
from hq_server.extensions import db
from shared.playbook import load_playbook
from tests.conftest import reset_tables
from tests.factories import Company, push

DEFAULT = (Path(__file__).resolve().parents[2] / "config" / "playbook.default.yaml").read_text()
START = datetime(2026, 11, 2, 1, tzinfo=UTC)

DATA = {
    "deal.opened": st.fixed_dictionaries(
        {
            "name": st.just("d"),
            "currency": st.just("CNY"),
            "amount": st.sampled_from([1000, 999_999, 1_000_000, 5_000_000]),
        }
    ),
    "visit.logged": st.fixed_dictionaries({"decision_maker_met": st.booleans()}),
    "quote.issued": st.fixed_dictionaries(
        {
            "amount": st.sampled_from([100, 2_000_000]),
            "currency": st.just("CNY"),
            "discount_pct": st.sampled_from([0, 15, 15.5, 30]),
        }
    ),
    "deal.lost": st.one_of(
        st.just({}),
        st.just({"loss_reason": "price"}),
        st.just({"loss_reason": "price", "competitor": {"name": "R", "product": "X", "price": 10}}),
    ),
    "lead.created": st.fixed_dictionaries({"source": st.just("web"), "score": st.integers(0, 100)}),
    "lead.assigned": st.just({"to_rep": "SH01-002"}),
}


@st.composite
def corpora(draw):
    deals = [str(uuid.uuid4()) for _ in range(draw(st.integers(1, 3)))]
    events = []
    for seq in range(1, draw(st.integers(1, 12)) + 1):
        kind = draw(st.sampled_from(sorted(DATA)))
        events.append(
            {
                "id": str(uuid.uuid4()),
                "seq": seq,
                "type": kind,
                "rep": "SH01-001",
                "occurred_at": (START + timedelta(hours=seq)).isoformat(),
                "deal": draw(st.sampled_from(deals)),
                "data": draw(DATA[kind]),
            }
        )
    return events


@settings(max_examples=20)
@given(events=corpora())
def test_agent_and_hq_judge_every_event_alike(app, tmp_path_factory, events):
    reset_tables(app)
    company = Company.create(app)
    client = app.test_client()
    assert (
        client.post(
            "/api/v1/playbooks", data=DEFAULT, headers=company.user("hq_manager")
        ).status_code
        == 201
    )
    with app.app_context():
        db.session.execute(text("UPDATE playbooks SET published_at = '2026-01-01T00:00:00Z'"))
        db.session.commit()
    with Outbox(tmp_path_factory.mktemp("agent")) as outbox:
        outbox.set_cache(playbook=load_playbook(DEFAULT).to_dict())
        for event in events:  # one at a time, in the order they happened, on both sides
            at_desk = sorted(v["rule_id"] for v in local_verdicts(outbox, event))
            outbox.add({k: v for k, v in event.items() if k != "seq"})
            result = push(client, company.agent("SH01"), [event]).get_json()["results"][0]
            assert result["status"] == "accepted", result
            at_hq = sorted(v["rule_id"] for v in result.get("violations", []))
            assert at_desk == at_hq, (event["type"], event["data"])
