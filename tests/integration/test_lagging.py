"""Lagging detection on a generated company: the lagging branch is flagged, the noisy one not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import pytest

from hq_server.extensions import db
from hq_server.services.auth import add_user, issue_agent_token, issue_user_token
from hq_server.services.lagging import Week
from hq_server.services.org import import_org
from tests.factories import EventMaker, push

# Won / closed last week: four healthy branches near 30 %, one lagging, one small and noisy.
BRANCHES = {
    "N1": (30, 100),
    "N2": (33, 100),
    "N3": (28, 100),
    "N4": (31, 100),
    "LAG": (8, 100),
    "TINY": (0, 6),
}


@pytest.fixture
def company(app):
    rows = [
        {
            "region_code": "NORTH",
            "region_name": "North",
            "branch_code": code,
            "branch_name": f"Branch {code}",
            "rep_code": f"{code}-1",
            "rep_name": "Rep",
        }
        for code in BRANCHES
    ]
    with app.app_context():
        import_org(rows, "Asia/Shanghai")
        db.session.flush()
        tokens = {code: issue_agent_token(code) for code in BRANCHES}
        for role, scope in (
            ("hq_manager", "HQ"),
            ("branch_manager", "LAG"),
            ("region_manager", "NORTH"),
        ):
            tokens[role] = issue_user_token(add_user(f"{role}-x", role, scope))
        db.session.commit()
    return {k: {"Authorization": f"Bearer {v}"} for k, v in tokens.items()}


def _close_deals(client, headers, code, won, total, day):
    maker = EventMaker(f"{code}-1", start=datetime.combine(day, time(2), UTC))
    events = []
    for i in range(total):
        deal = str(uuid.uuid4())
        events += [
            maker.deal_opened(deal),
            maker.make(
                "deal.won" if i < won else "deal.lost",
                {"loss_reason": "price"} if i >= won else {},
                deal=deal,
            ),
        ]
    for start in range(0, len(events), 500):
        resp = push(client, headers, events[start : start + 500])
        assert resp.get_json()["counts"]["rejected"] == 0


def _week():
    return Week.finished_before(datetime.now(UTC).date())


def test_the_lagging_branch_is_flagged_with_its_reason_and_the_noisy_one_is_not(client, company):
    week = _week()
    for code, (won, total) in BRANCHES.items():
        _close_deals(client, company[code], code, won, total, week.start)
    scan = client.post("/api/v1/lagging/scan", headers=company["hq_manager"])
    assert scan.status_code == 200
    flags = client.get(
        f"/api/v1/lagging?unit=NORTH&from={week.start}&to={week.end}",
        headers=company["region_manager"],
    ).get_json()["flags"]
    win = {f["unit"]: f for f in flags if f["metric"] == "win_rate"}
    assert set(win) == {"LAG"}
    flag = win["LAG"]
    assert flag["severity"] in ("warn", "alert") and flag["z"] < -2
    assert flag["n"] == 100 and flag["value"] == pytest.approx(0.08)
    assert "8%" in flag["reason"]["en"] and "100" in flag["reason"]["en"]
    assert "8%" in flag["reason"]["zh"]
    assert flag["peer_value"] == pytest.approx(130 / 500)  # too small to count: TINY


def test_a_flag_is_acknowledged_then_resolved_when_the_branch_is_back_inside_limits(
    app, client, company
):
    week = _week()
    for code, (won, total) in BRANCHES.items():
        _close_deals(client, company[code], code, won, total, week.start)
    client.post("/api/v1/lagging/scan", headers=company["hq_manager"])
    query = f"/api/v1/lagging?unit=LAG&from={week.start}&to={week.end}"
    (flag,) = [
        f
        for f in client.get(query, headers=company["branch_manager"]).get_json()["flags"]
        if f["metric"] == "win_rate"
    ]
    ack = client.post(
        f"/api/v1/lagging/{flag['id']}/acknowledge",
        json={"note": "two reps on leave"},
        headers=company["branch_manager"],
    )
    assert ack.get_json()["status"] == "acknowledged"
    # Late pushes for that week bring the branch up to its peers.
    _close_deals(client, company["LAG"], "LAG", 40, 40, week.start + timedelta(days=1))
    client.post("/api/v1/lagging/scan", headers=company["hq_manager"])
    again = client.get(f"/api/v1/lagging/{flag['id']}", headers=company["branch_manager"])
    assert again.get_json()["status"] == "resolved"
    assert again.get_json()["note"] == "two reps on leave"  # the history is kept


def test_rescanning_does_not_duplicate_flags(client, company):
    week = _week()
    for code, (won, total) in BRANCHES.items():
        _close_deals(client, company[code], code, won, total, week.start)
    for _ in range(2):
        client.post("/api/v1/lagging/scan", headers=company["hq_manager"])
    flags = client.get(
        f"/api/v1/lagging?unit=HQ&from={week.start}&to={week.end}", headers=company["hq_manager"]
    ).get_json()["flags"]
    keys = [(f["check"], f["metric"], f["unit"]) for f in flags]
    assert len(keys) == len(set(keys)) and ("peers", "win_rate", "LAG") in keys


def test_only_hq_runs_a_scan_and_tiers_rank_the_children(client, company):
    assert client.post("/api/v1/lagging/scan", headers=company["region_manager"]).status_code == 403
    week = _week()
    for code, (won, total) in BRANCHES.items():
        _close_deals(client, company[code], code, won, total, week.start)
    body = client.get(
        f"/api/v1/tiers?unit=NORTH&from={week.start}&to={week.end}",
        headers=company["region_manager"],
    ).get_json()
    assert body["level"] == "branch"
    # Six branches: a quarter is 1.5, so one branch at each end (mid-rank percentiles).
    assert body["tiers"]["win_rate"] == {
        "N2": "top",
        "N4": "middle",
        "N1": "middle",
        "N3": "middle",
        "LAG": "middle",
        "TINY": "bottom",
    }


def test_a_branch_below_its_own_median_for_three_weeks_is_flagged(client, company):
    week = _week()
    maker = EventMaker("N1-1")
    events = []
    for weeks_back in range(10, -1, -1):
        monday = week.start - timedelta(weeks=weeks_back)
        per_week = 20 if weeks_back >= 3 else 5
        events += [
            maker.make(
                "visit.logged",
                {"decision_maker_met": True},
                at=datetime.combine(monday, time(3), UTC) + timedelta(hours=i),
            )
            for i in range(per_week)
        ]
    push(client, company["N1"], events)
    client.post("/api/v1/lagging/scan", headers=company["hq_manager"])
    flags = client.get(
        f"/api/v1/lagging?unit=N1&from={week.start}&to={week.end}", headers=company["hq_manager"]
    ).get_json()["flags"]
    (trend,) = [f for f in flags if f["check"] == "trend"]
    assert trend["peer_value"] == 20 and trend["value"] == 5
    assert trend["details"]["run_length"] >= 3


def test_a_large_push_queues_a_lagging_scan(app, client, company):
    _close_deals(client, company["N1"], "N1", 100, 250, _week().start)  # 500 events, one push
    with app.app_context():
        keys = db.session.execute(db.text("SELECT key FROM job_outbox")).scalars().all()
    assert any(k.startswith("scan_lagging:push:") for k in keys)


def test_the_managers_over_a_newly_flagged_branch_are_notified_once(app, client, company):
    week = _week()
    for code, (won, total) in BRANCHES.items():
        _close_deals(client, company[code], code, won, total, week.start)
    for _ in range(2):
        client.post("/api/v1/lagging/scan", headers=company["hq_manager"])
    inbox = client.get("/api/v1/inbox", headers=company["branch_manager"]).get_json()
    lagging = [n for n in inbox["notifications"] if n["kind"] == "lagging"]
    assert len([n for n in lagging if n["body"]["metric"] == "win_rate"]) == 1
    assert "8%" in lagging[0]["subject"]["en"] or any("8%" in n["subject"]["en"] for n in lagging)
    region = client.get("/api/v1/inbox", headers=company["region_manager"]).get_json()
    assert any(n["body"]["unit"] == "LAG" for n in region["notifications"])


def test_reps_below_the_playbook_minimum_are_flagged_only_under_a_playbook_in_force(
    app, client, company
):
    from pathlib import Path

    from sqlalchemy import text

    week = _week()
    maker = EventMaker("N1-1")
    push(
        client,
        company["N1"],
        [
            maker.make(
                "visit.logged",
                {"decision_maker_met": True},
                at=datetime.combine(week.start, time(3), UTC),
            )
        ],
    )
    source = (Path(__file__).resolve().parents[2] / "config" / "playbook.default.yaml").read_text()
    assert (
        client.post("/api/v1/playbooks", data=source, headers=company["hq_manager"]).status_code
        == 201
    )

    def below_minimum():
        client.post("/api/v1/lagging/scan", headers=company["hq_manager"])
        flags = client.get(
            f"/api/v1/lagging?unit=N1&from={week.start}&to={week.end}",
            headers=company["hq_manager"],
        ).get_json()["flags"]
        return [f for f in flags if f["check"] == "poisson" and f["details"]["below_minimum"]]

    assert below_minimum() == []  # published after that week began: not retroactive
    with app.app_context():
        db.session.execute(text("UPDATE playbooks SET published_at = '2026-01-01T00:00:00Z'"))
        db.session.commit()
    (flag,) = below_minimum()
    assert flag["unit"] == "N1-1" and flag["value"] == 1
    assert "10" in flag["reason"]["en"]


def test_silence_is_counted_in_working_hours_of_the_branch_calendar(app, client, company):
    from pathlib import Path

    from sqlalchemy import text

    from hq_server.services.lagging import scan_lagging

    source = (Path(__file__).resolve().parents[2] / "config" / "playbook.default.yaml").read_text()
    client.post("/api/v1/playbooks", data=source, headers=company["hq_manager"])
    maker = EventMaker("N1-1")
    push(client, company["N1"], [maker.make("call.logged", {"connected": True})])
    monday_10 = datetime(2026, 11, 23, 2, tzinfo=UTC)  # Monday 10:00 in Shanghai

    def silent_after(last_push):
        with app.app_context():
            db.session.execute(text("UPDATE agent_streams SET last_push_at = :t"), {"t": last_push})
            db.session.execute(text("DELETE FROM lagging_flags"))
            scan_lagging(monday_10)
            db.session.commit()
            return db.session.execute(
                text("SELECT count(*) FROM lagging_flags WHERE metric = 'last_push'")
            ).scalar()

    # Friday 17:00 to Monday 10:00: two working hours, whatever the weekend's length.
    assert silent_after(datetime(2026, 11, 20, 9, tzinfo=UTC)) == 0
    # Wednesday 10:00 to Monday 10:00: four working days, well over 24 working hours.
    assert silent_after(datetime(2026, 11, 18, 2, tzinfo=UTC)) == 1
