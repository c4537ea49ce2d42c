"""Weekly and monthly digests: hand-computed figures from pushed events, built once."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import select, text

from hq_server.extensions import db
from hq_server.models import Digest, LaggingFlag
from hq_server.services.digests import build_digests, period_of
from hq_server.services.org import active_unit
from hq_server.services.scans import scan_timers
from tests.factories import EventMaker, push

DEFAULT = (Path(__file__).resolve().parents[2] / "config" / "playbook.default.yaml").read_text()
SUNDAY = date(2026, 11, 8)  # the week of Monday 2026-11-02, Asia/Shanghai (UTC+8)
AFTER = datetime(2026, 11, 10, tzinfo=UTC)
COMPETITOR = {"name": "Rival", "product": "R1", "price": 1800}


def _at(text_: str) -> datetime:
    return datetime.fromisoformat(text_)


@pytest.fixture(scope="module")
def api_app(services, app):
    """The app with the inbox blueprint (registered here until ``create_app`` does it)."""
    from hq_server import create_app
    from hq_server.api import inbox

    fresh = create_app(services)
    if "inbox" not in fresh.blueprints:
        fresh.extensions["flask-smorest"]["apis"][""]["ext_obj"].register_blueprint(inbox.blp)
    yield fresh
    with fresh.app_context():
        db.engine.dispose()


@pytest.fixture
def week(app, client, company):
    """One week of a company's work, with facts just outside it on both sides."""
    published = client.post("/api/v1/playbooks", data=DEFAULT, headers=company.user("hq_manager"))
    assert published.status_code == 201
    with app.app_context():  # as if published long before the facts below
        db.session.execute(text("UPDATE playbooks SET published_at = '2026-01-01T00:00:00Z'"))
        db.session.commit()
    _push_sh01(client, company)
    _push_hz01_cd01(client, company)
    with app.app_context():
        scan_timers(_at("2026-11-09T01:00:00+00:00"))  # finds HZ01's late first contact
        _flags()
        db.session.commit()


def _push_sh01(client, company):
    sh = EventMaker("SH01-001")  # from Monday 17:07 local
    d1, d2, d3, d6, d7 = (str(uuid.uuid4()) for _ in range(5))
    events = [
        sh.deal_opened(d1, amount=1000),
        sh.make("visit.logged", {"decision_maker_met": True}, deal=d1),
        sh.make("quote.issued", {"amount": 900, "currency": "CNY"}, deal=d1),
        sh.make("deal.won", {"amount": 950}, deal=d1),
        sh.deal_opened(d2, amount=2000),
        sh.make("visit.logged", {"decision_maker_met": False}, deal=d2),
        sh.make("quote.issued", {"amount": 1500, "currency": "CNY"}, deal=d2),  # no DM met
        sh.make("deal.lost", {"loss_reason": "price", "competitor": COMPETITOR}, deal=d2),
        sh.deal_opened(d3, amount=300),
        sh.make("call.logged", {"connected": True}),
        # Sunday 23:30 and Monday 00:30 local are inside the week; Sunday before is not.
        sh.make("visit.logged", {"decision_maker_met": True}, at=_at("2026-11-08T15:30Z")),
        sh.make("visit.logged", {"decision_maker_met": False}, at=_at("2026-11-01T16:30Z")),
        sh.make("visit.logged", {"decision_maker_met": True}, at=_at("2026-11-01T15:30Z")),
        # Opened before the week, won in it; and won just after it (Monday 00:30 local).
        sh.deal_opened(d7, amount=700, at=_at("2026-10-28T03:00Z")),
        sh.make("deal.won", {}, deal=d7, at=_at("2026-11-03T03:00Z")),
        sh.deal_opened(d6, amount=5000, at=_at("2026-10-30T03:00Z")),
        sh.make("deal.won", {}, deal=d6, at=_at("2026-11-08T16:30Z")),
    ]
    resp = push(client, company.agent("SH01"), events)
    assert resp.get_json()["counts"]["accepted"] == len(events), resp.get_json()


def _push_hz01_cd01(client, company):
    hz, lead, d4 = EventMaker("HZ01-001"), str(uuid.uuid4()), str(uuid.uuid4())
    events = [
        hz.make(
            "lead.created", {"source": "web", "score": 80}, deal=lead, at=_at("2026-11-02T01:00Z")
        ),
        # Assigned Monday 10:00 local and never called: due Wednesday 16:00.
        hz.make("lead.assigned", {"to_rep": "HZ01-002"}, deal=lead, at=_at("2026-11-02T02:00Z")),
        hz.deal_opened(d4, amount=500),
        hz.make("deal.won", {"amount": 500}, deal=d4),
    ]
    assert push(client, company.agent("HZ01"), events).get_json()["counts"]["accepted"] == 4
    cd, d5 = EventMaker("CD01-001"), str(uuid.uuid4())
    events = [
        cd.deal_opened(d5, amount=800),
        cd.make("deal.lost", {"loss_reason": "timing", "competitor": COMPETITOR}, deal=d5),
    ]
    assert push(client, company.agent("CD01"), events).get_json()["counts"]["accepted"] == 2


def _flag(unit: str, n: int, created: str, resolved: str | None = None, severity="warn"):
    row = active_unit(unit)
    return LaggingFlag(
        key=f"test:{unit}:{n}",
        unit_code=unit,
        unit_kind=row.kind,
        parent_code=None,
        unit_path=row.path,
        metric="win_rate",
        check="peers",
        period_kind="week",
        period_start=date(2026, 10, 26),
        period_end=date(2026, 11, 1),
        severity=severity,
        status="resolved" if resolved else "open",
        reason={"en": f"{unit} lags", "zh": f"{unit} 落后"},
        details={},
        created_at=_at(created),
        resolved_at=_at(resolved) if resolved else None,
    )


def _flags():
    db.session.add_all(
        [
            _flag("SH01", 1, "2026-11-03T04:00Z", severity="alert"),
            _flag("HZ01", 2, "2026-10-20T04:00Z", resolved="2026-11-04T04:00Z"),
            _flag("SH01", 3, "2026-11-08T17:00Z"),  # Monday 01:00 local: the next week
            _flag("EAST", 4, "2026-11-05T04:00Z"),
            _flag("CD01", 5, "2026-11-04T04:00Z"),
        ]
    )


def _figures(opened, won, lost, amount, activity, rules, sla, lagging) -> dict:
    checked = sum(c for c, _ in rules.values())
    violated = sum(v for _, v in rules.values())
    return {
        "deals": {
            "opened": opened,
            "won": won,
            "lost": lost,
            "win_rate": None if not won + lost else won / (won + lost),
            "won_amount": amount,
        },
        "activity": dict(
            zip(("visits", "visits_decision_maker", "calls", "quotes"), activity, strict=True)
        ),
        "compliance": {
            "checked": checked,
            "violated": violated,
            "rate": None if not checked else 1 - violated / checked,
            "rules": [
                {"rule_id": r, "checked": c, "violated": v, "compliance": 1 - v / c}
                for r, (c, v) in sorted(rules.items())
            ],
        },
        "sla_violations": sla,
        "lagging": dict(zip(("opened", "resolved"), lagging, strict=True)),
    }


BIG, LOST = "big-deal-needs-regional-approval", "lost-deal-needs-reason-and-competitor"
QUOTE, HANDOFF = "quote-needs-decision-maker-visit", "lead-handoff-sales-ready"
SH01 = _figures(
    3, 2, 1, 1650.0, (4, 2, 1, 2), {BIG: (5, 0), LOST: (1, 0), QUOTE: (2, 1)}, 0, (1, 0)
)
HZ01 = _figures(2, 1, 0, 500.0, (0, 0, 0, 0), {BIG: (1, 0), HANDOFF: (1, 0)}, 1, (0, 1))
EAST = _figures(
    5,
    3,
    1,
    2150.0,
    (4, 2, 1, 2),
    {BIG: (6, 0), HANDOFF: (1, 0), LOST: (1, 0), QUOTE: (2, 1)},
    1,
    (2, 1),  # the region's own flag counts in its totals only
)
CD01 = _figures(1, 0, 1, 0.0, (0, 0, 0, 0), {BIG: (1, 0), LOST: (1, 0)}, 0, (1, 0))


def _digest(app, key: str) -> Digest:
    with app.app_context():
        digest = db.session.scalar(select(Digest).where(Digest.key == key))
        db.session.expunge_all()
        return digest


def test_a_weekly_digest_holds_the_hand_computed_figures_of_each_branch(app, week):
    with app.app_context():
        assert build_digests("weekly", SUNDAY, AFTER) == 2
        db.session.commit()
    east = _digest(app, "weekly:EAST:2026-11-02").content
    assert east["period"] == {"from": "2026-11-02", "to": "2026-11-08"}
    assert [b["code"] for b in east["branches"]] == ["HZ01", "SH01"]
    by_code = {b.pop("code"): b for b in east["branches"]}
    assert {c: {k: v for k, v in b.items() if k != "name"} for c, b in by_code.items()} == {
        "HZ01": HZ01,
        "SH01": SH01,
    }
    assert east["totals"] == EAST
    assert [(f["unit"], f["severity"]) for f in east["lagging_opened"]] == [
        ("SH01", "alert"),
        ("EAST", "warn"),
    ]
    west = _digest(app, "weekly:WEST:2026-11-02").content
    assert west["totals"] == CD01 and [b["code"] for b in west["branches"]] == ["CD01"]


def test_building_twice_makes_one_digest_and_one_notification_each(app, week):
    with app.app_context():
        assert build_digests("weekly", SUNDAY, AFTER) == 2
        assert build_digests("weekly", SUNDAY, AFTER) == 0
        db.session.commit()
        rows = db.session.execute(
            text(
                "SELECT u.username, n.key, n.body FROM notifications n "
                "JOIN users u ON u.id = n.user_id ORDER BY 1, 2"
            )
        ).all()
        ids = dict(db.session.execute(text("SELECT key, id FROM digests")).all())
    assert [(r.username, r.key) for r in rows] == [
        ("hq_manager-user", "weekly:EAST:2026-11-02"),
        ("hq_manager-user", "weekly:WEST:2026-11-02"),
        ("region_manager-user", "weekly:EAST:2026-11-02"),
    ]
    assert all(r.body["digest_id"] == ids[r.key] for r in rows)


def test_a_period_not_over_in_the_region_builds_nothing_yet(app, company):
    with app.app_context():
        # Sunday 23:00 in Shanghai: the week is not over there.
        assert build_digests("weekly", SUNDAY, _at("2026-11-08T15:00Z")) == 0
        assert build_digests("weekly", SUNDAY, _at("2026-11-08T16:00Z")) == 2
        db.session.rollback()


def test_periods_are_iso_weeks_and_calendar_months(app):
    assert period_of("weekly", SUNDAY) == (date(2026, 11, 2), SUNDAY)
    assert period_of("monthly", date(2026, 2, 28)) == (date(2026, 2, 1), date(2026, 2, 28))
    with pytest.raises(ValueError):
        period_of("weekly", date(2026, 11, 7))
    with pytest.raises(ValueError):
        period_of("monthly", date(2026, 11, 29))


def test_the_digest_api_lists_and_returns_digests_in_scope(app, api_app, company, week):
    with app.app_context():
        build_digests("weekly", SUNDAY, AFTER)
        db.session.commit()
    api = api_app.test_client()
    listed = api.get("/api/v1/digests?unit=HQ&kind=weekly", headers=company.user("hq_manager"))
    assert [d["region"] for d in listed.get_json()["digests"]] == ["EAST", "WEST"]
    none = api.get("/api/v1/digests?unit=HQ&kind=monthly", headers=company.user("hq_manager"))
    assert none.get_json() == {"digests": []}
    east = listed.get_json()["digests"][0]
    one = api.get(f"/api/v1/digests/{east['id']}", headers=company.user("region_manager"))
    assert one.status_code == 200 and one.get_json()["content"]["totals"] == EAST


def test_the_digest_job_runs_through_the_outbox_relay_and_a_real_worker(
    app, week, queue, monkeypatch
):
    from hq_server.jobs.notify_tasks import NOTIFY_TASKS
    from hq_server.jobs.outbox import add_job, relay
    from hq_server.jobs.tasks import TASKS

    for name, func in NOTIFY_TASKS.items():
        if name not in TASKS:
            monkeypatch.setitem(TASKS, name, func)
    with app.app_context():
        add_job("build_digests:2026-11-10", "build_digests", again=False, as_of=AFTER.isoformat())
        db.session.commit()
        assert relay(queue) == 1
        SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer).work(
            burst=True
        )
        db.session.rollback()
        keys = set(db.session.scalars(select(Digest.key)))
        done = db.session.scalar(text("SELECT done_at IS NOT NULL FROM job_outbox"))
    assert len(queue.failed_job_registry) == 0 and done
    assert keys == {
        "weekly:EAST:2026-11-02",
        "weekly:WEST:2026-11-02",
        "monthly:EAST:2026-10-01",
        "monthly:WEST:2026-10-01",
    }
    assert _digest(app, "weekly:EAST:2026-11-02").content["totals"] == EAST
