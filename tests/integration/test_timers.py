"""Timer rules under time travel: SLA clocks, weekly quotas, stalled deals; idempotent scans."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import text

from hq_server.extensions import db
from hq_server.jobs.outbox import relay, schedule_periodic
from hq_server.services.scans import scan_timers
from tests.factories import EventMaker, push

DEFAULT = (Path(__file__).resolve().parents[2] / "config" / "playbook.default.yaml").read_text()
SLA = "first-contact-within-24-working-hours"
# Monday 2026-11-09 10:00 in Shanghai.
MONDAY = datetime(2026, 11, 9, 2, 0, tzinfo=UTC)


@pytest.fixture
def playbook(app, client, company):
    resp = client.post("/api/v1/playbooks", data=DEFAULT, headers=company.user("hq_manager"))
    assert resp.status_code == 201
    with app.app_context():  # as if published long before the facts below
        db.session.execute(text("UPDATE playbooks SET published_at = '2026-01-01T00:00:00Z'"))
        db.session.commit()


def _violations(app, kind):
    with app.app_context():
        return db.session.execute(
            text("SELECT key, status, details FROM violations WHERE kind = :k ORDER BY key"),
            {"k": kind},
        ).all()


def _scan(app, now):
    with app.app_context():
        found = scan_timers(now)
        db.session.commit()
    return found


def test_an_unanswered_lead_fails_its_sla_after_24_working_hours(app, client, company, playbook):
    maker = EventMaker("SH01-001", start=MONDAY - timedelta(minutes=7))
    lead = str(uuid.uuid4())
    push(
        client,
        company.agent("SH01"),
        [
            maker.make("lead.created", {"source": "web", "score": 80}, deal=lead),
            maker.make("lead.assigned", {"to_rep": "SH01-002"}, deal=lead, at=MONDAY),
        ],
    )
    # 24 working hours of 9 per day from Monday 10:00: due Wednesday 16:00 local.
    assert _scan(app, MONDAY + timedelta(days=2, hours=5))["sla"] == 0
    assert _scan(app, MONDAY + timedelta(days=2, hours=7))["sla"] == 1
    rows = _violations(app, "sla")
    assert len(rows) == 1 and rows[0].details["response_by"] == "2026-11-11T16:00:00+08:00"
    _scan(app, MONDAY + timedelta(days=3))  # running again creates nothing twice
    assert len(_violations(app, "sla")) == 1


def test_a_late_first_call_is_recorded_as_failed_with_its_lateness(app, client, company, playbook):
    maker = EventMaker("SH01-002")
    lead = str(uuid.uuid4())
    push(
        client,
        company.agent("SH01"),
        [
            maker.make("lead.assigned", {"to_rep": "SH01-002"}, deal=lead, at=MONDAY),
            maker.make(
                "call.logged", {"connected": True}, deal=lead, at=MONDAY + timedelta(days=3)
            ),
        ],
    )  # Thursday 10:00
    _scan(app, MONDAY + timedelta(days=5))
    (row,) = _violations(app, "sla")
    # Due Wednesday 16:00; late by Wednesday 16-18 and Thursday 9-10: three working hours.
    assert row.details["late_working_seconds"] == pytest.approx(3 * 3600)
    assert row.details["responded_at"].startswith("2026-11-12T02:00")


def test_a_lead_answered_in_time_is_not_flagged(app, client, company, playbook):
    maker = EventMaker("SH01-002")
    lead = str(uuid.uuid4())
    push(
        client,
        company.agent("SH01"),
        [
            maker.make("lead.assigned", {"to_rep": "SH01-002"}, deal=lead, at=MONDAY),
            maker.make(
                "visit.logged",
                {"decision_maker_met": False},
                deal=lead,
                at=MONDAY + timedelta(hours=3),
            ),
        ],
    )
    assert _scan(app, MONDAY + timedelta(days=6))["sla"] == 0


def test_reps_below_the_weekly_visit_quota_are_flagged_once_the_week_is_over(
    app, client, company, playbook
):
    busy, idle = EventMaker("SH01-001"), EventMaker("SH01-002")
    events = [
        busy.make("visit.logged", {"decision_maker_met": True}, at=MONDAY + timedelta(hours=i))
        for i in range(10)
    ]
    events += [idle.make("visit.logged", {"decision_maker_met": True}, at=MONDAY)]
    push(client, company.agent("SH01"), events)
    _scan(app, MONDAY + timedelta(days=3))
    weeks = {r.details["period_start"] for r in _violations(app, "quota")}
    assert "2026-11-09" not in weeks  # the week is not over yet
    _scan(app, MONDAY + timedelta(days=7, hours=1))
    flagged = {
        (r.details["rep"], r.details["count"])
        for r in _violations(app, "quota")
        if r.details["period_start"] == "2026-11-09"
    }
    # Every SH01 rep short of ten visits that week, and nobody who made them.
    assert ("SH01-002", 1) in flagged and not any(rep == "SH01-001" for rep, _ in flagged)


def test_a_deal_without_activity_for_14_days_is_stalled_until_it_moves(
    app, client, company, playbook
):
    start = MONDAY - timedelta(days=21)
    maker = EventMaker("SH01-001")
    deal = str(uuid.uuid4())
    push(client, company.agent("SH01"), [maker.deal_opened(deal, at=start)])
    assert _scan(app, start + timedelta(days=13))["stall"] == 0
    _scan(app, start + timedelta(days=15))
    _scan(app, start + timedelta(days=15, hours=2))  # nothing twice
    assert [r.status for r in _violations(app, "stall")] == ["open"]
    moved = push(
        client,
        company.agent("SH01"),
        [maker.make("call.logged", {"connected": True}, deal=deal, at=start + timedelta(days=16))],
    )
    assert moved.get_json()["counts"]["accepted"] == 1
    _scan(app, start + timedelta(days=17))
    assert [r.status for r in _violations(app, "stall")] == ["resolved"]


def test_the_hourly_scan_runs_once_through_the_outbox_and_a_real_worker(
    app, company, playbook, queue
):
    with app.app_context():
        now = datetime.now(UTC)
        schedule_periodic(now)
        schedule_periodic(now)  # a second scheduler (or a restart) adds nothing
        db.session.commit()
        # The timer and lagging scans, the digests, the pipeline cuts and the rollup compaction
        # of this hour, and the outbound messages.
        assert relay(queue) == 7
        SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer).work(
            burst=True
        )
        db.session.rollback()
        done = db.session.execute(
            text("SELECT key, done_at IS NOT NULL FROM job_outbox ORDER BY key")
        ).all()
        schedule_periodic(now)
        db.session.commit()
        assert relay(queue) == 0  # this hour's scan is done; nothing is queued again
    hour = f"{now:%Y-%m-%dT%H}"
    keys = {key: finished for key, finished in done}
    assert keys[f"scan_timers:{hour}"] and keys[f"scan_lagging:{hour}"]
    assert keys[f"build_digests:{hour}"] and keys[f"snapshot_pipeline:{hour}"]
    assert keys[f"compact_rollups:{hour}"]
    assert len(keys) == 7 and all(keys.values())
    assert len(queue.failed_job_registry) == 0


def test_sla_compliance_counts_clocks_started_and_failed(app, client, company, playbook):
    maker = EventMaker("SH01-002")
    answered, ignored = str(uuid.uuid4()), str(uuid.uuid4())
    push(
        client,
        company.agent("SH01"),
        [
            maker.make("lead.assigned", {"to_rep": "SH01-002"}, deal=answered, at=MONDAY),
            maker.make(
                "call.logged", {"connected": True}, deal=answered, at=MONDAY + timedelta(hours=2)
            ),
            maker.make("lead.assigned", {"to_rep": "SH01-002"}, deal=ignored, at=MONDAY),
        ],
    )
    _scan(app, MONDAY + timedelta(days=6))
    body = client.get(
        "/api/v1/compliance?unit=SH01&from=2026-11-09&to=2026-11-15",
        headers=company.user("branch_manager"),
    ).get_json()
    (sla,) = [r for r in body["rules"] if r["rule_id"] == SLA]
    assert (sla["checked"], sla["violated"], sla["compliance"]) == (2, 1, 0.5)
