"""Every route x every role x in/out of scope, generated from the live route list."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from hq_server.extensions import db
from hq_server.models import Approval, LaggingFlag, Violation
from hq_server.services.org import active_unit
from tests.factories import ROLE_SCOPES, EventMaker, push
from tests.integration.scope_finance import ROUTES as FINANCE_ROUTES
from tests.integration.scope_notify import ROUTES as NOTIFY_ROUTES
from tests.integration.scope_web import WEB_ROUTES

UNITS = ("HQ", "EAST", "WEST", "SH01", "HZ01", "CD01")
BRANCHES = ("SH01", "HZ01", "CD01")
SUBTREES = {
    "HQ": set(UNITS),
    "EAST": {"EAST", "SH01", "HZ01"},
    "WEST": {"WEST", "CD01"},
}
PUBLIC = {"/healthz", "/api/v1/openapi.json", "/static/<path:filename>"}
MANAGERS = {"branch_manager", "region_manager", "hq_manager", "admin"}
PUBLISHERS = {"hq_manager", "admin"}


def visible(scope: str, unit: str) -> bool:
    return unit in SUBTREES.get(scope, {scope})


@dataclass
class Call:
    client: object
    headers: dict
    kind: str
    role: str
    scope: str
    seeds: dict


def _unit_get(path: str, kinds: set[str]):
    def check(c: Call):
        for unit in UNITS:
            resp = c.client.get(f"{path}?unit={unit}", headers=c.headers)
            if c.kind not in kinds:
                assert resp.status_code == 403
            elif visible(c.scope, unit):
                assert resp.status_code == 200, (c.role, c.scope, unit, resp.get_json())
            else:
                assert resp.status_code == 404, (c.role, c.scope, unit)
                assert resp.get_json()["code"] == "not_found"

    return check


def _push(c: Call):
    for unit in BRANCHES:
        resp = push(c.client, c.headers, [EventMaker(f"{unit}-001").deal_opened()])
        if c.kind != "agent":
            assert resp.status_code == 403
            continue
        # A push names no unit: the token's branch decides; another branch's rep is refused.
        status = resp.get_json()["results"][0]["status"]
        assert status == ("accepted" if unit == c.scope else "rejected"), (c.scope, unit)


def _pull(c: Call):
    resp = c.client.get("/api/v1/sync/pull", headers=c.headers)
    if c.kind != "agent":
        assert resp.status_code == 403
        return
    body = resp.get_json()
    assert body["branch"]["code"] == c.scope
    assert body["reps"] and all(r["code"].startswith(f"{c.scope}-") for r in body["reps"])


def _current_playbook(c: Call):
    resp = c.client.get("/api/v1/playbooks/current", headers=c.headers)
    assert resp.status_code == 404 and resp.get_json()["code"] == "not_found"


def _validate_playbook(c: Call):
    resp = c.client.post("/api/v1/playbooks/validate", data="version: [", headers=c.headers)
    allowed = c.kind == "user" and c.role in PUBLISHERS
    assert resp.status_code == (422 if allowed else 403)


def _list_playbooks(c: Call):
    resp = c.client.get("/api/v1/playbooks", headers=c.headers)
    allowed = c.kind == "user" and c.role in PUBLISHERS
    assert resp.status_code == (200 if allowed else 403)
    if allowed:
        assert resp.get_json() == {"versions": []}


def _diff_playbooks(c: Call):
    resp = c.client.get("/api/v1/playbooks/diff", headers=c.headers)
    allowed = c.kind == "user" and c.role in PUBLISHERS
    assert resp.status_code == (422 if allowed else 403)  # nothing published to compare


def _publish_playbook(c: Call):
    resp = c.client.post("/api/v1/playbooks", data="version: [", headers=c.headers)
    allowed = c.kind == "user" and c.role in PUBLISHERS
    assert resp.status_code == (422 if allowed else 403), (c.role, resp.get_json())


def _acknowledge(c: Call):
    for branch, violation_id in c.seeds["violations"].items():
        resp = c.client.post(
            f"/api/v1/violations/{violation_id}/acknowledge",
            json={"note": "seen"},
            headers=c.headers,
        )
        if c.kind != "user" or c.role not in MANAGERS:
            assert resp.status_code == 403
        elif visible(c.scope, branch):
            assert resp.status_code == 200 and resp.get_json()["status"] == "acknowledged"
        else:
            assert resp.status_code == 404


def _list_approvals(c: Call):
    resp = c.client.get("/api/v1/approvals?status=all", headers=c.headers)
    if c.kind != "user":
        assert resp.status_code == 403
        return
    seen = {a["branch"] for a in resp.get_json()["approvals"]}
    assert seen == {b for b in c.seeds["approvals"] if visible(c.scope, b)}


def _decide(c: Call):
    for branch, approval_id in c.seeds["approvals"].items():
        resp = c.client.post(
            f"/api/v1/approvals/{approval_id}",
            json={"decision": "refuse", "note": "no"},
            headers=c.headers,
        )
        if c.kind != "user":
            assert resp.status_code == 403
        elif not visible(c.scope, branch):
            assert resp.status_code == 404
        elif c.role in ("region_manager", "hq_manager", "admin"):
            assert resp.status_code == 200 and resp.get_json()["status"] == "refused"
        else:
            assert resp.status_code == 403


def _get_flag(c: Call):
    for branch, flag_id in c.seeds["flags"].items():
        resp = c.client.get(f"/api/v1/lagging/{flag_id}", headers=c.headers)
        if c.kind != "user":
            assert resp.status_code == 403
        else:
            assert resp.status_code == (200 if visible(c.scope, branch) else 404)


def _acknowledge_flag(c: Call):
    for branch, flag_id in c.seeds["flags"].items():
        resp = c.client.post(
            f"/api/v1/lagging/{flag_id}/acknowledge", json={"note": "ok"}, headers=c.headers
        )
        if c.kind != "user" or c.role not in MANAGERS:
            assert resp.status_code == 403
        else:
            assert resp.status_code == (200 if visible(c.scope, branch) else 404)


def _scan(c: Call):
    resp = c.client.post("/api/v1/lagging/scan", headers=c.headers)
    allowed = c.kind == "user" and c.role in PUBLISHERS
    assert resp.status_code == (200 if allowed else 403)


def _set_target(c: Call):
    resp = c.client.post(
        "/api/v1/targets",
        json={
            "unit": "SH01",
            "metric": "visits",
            "period": "month",
            "start": "2026-11-01",
            "value": 40,
        },
        headers=c.headers,
    )
    allowed = c.kind == "user" and c.role in PUBLISHERS
    assert resp.status_code == (201 if allowed else 403)


def _get_rates(c: Call):
    resp = c.client.get("/api/v1/fx", headers=c.headers)
    assert resp.status_code == (200 if c.kind == "user" else 403)


def _set_rate(c: Call):
    resp = c.client.post(
        "/api/v1/fx",
        json={"currency": "USD", "day": "2026-11-01", "rate": "7.1"},
        headers=c.headers,
    )
    allowed = c.kind == "user" and c.role in ("finance", "hq_manager", "admin")
    assert resp.status_code == (201 if allowed else 403)


# Route -> the check of every caller against it.
ROUTES = {
    ("/api/v1/funnel", "GET"): _unit_get("/api/v1/funnel", {"user", "agent"}),
    ("/api/v1/metrics", "GET"): _unit_get("/api/v1/metrics", {"user", "agent"}),
    ("/api/v1/lagging", "GET"): _unit_get("/api/v1/lagging", {"user"}),
    ("/api/v1/tiers", "GET"): _unit_get("/api/v1/tiers", {"user"}),
    ("/api/v1/lagging/<int:flag_id>", "GET"): _get_flag,
    ("/api/v1/lagging/<int:flag_id>/acknowledge", "POST"): _acknowledge_flag,
    ("/api/v1/lagging/scan", "POST"): _scan,
    ("/api/v1/targets", "GET"): _unit_get("/api/v1/targets", {"user"}),
    ("/api/v1/targets", "POST"): _set_target,
    ("/api/v1/pipeline", "GET"): _unit_get("/api/v1/pipeline", {"user"}),
    ("/api/v1/fx", "GET"): _get_rates,
    ("/api/v1/fx", "POST"): _set_rate,
    ("/api/v1/violations", "GET"): _unit_get("/api/v1/violations", {"user", "agent"}),
    ("/api/v1/compliance", "GET"): _unit_get("/api/v1/compliance", {"user", "agent"}),
    ("/api/v1/sync/push", "POST"): _push,
    ("/api/v1/sync/pull", "GET"): _pull,
    ("/api/v1/playbooks/current", "GET"): _current_playbook,
    ("/api/v1/playbooks/validate", "POST"): _validate_playbook,
    ("/api/v1/playbooks", "POST"): _publish_playbook,
    ("/api/v1/playbooks", "GET"): _list_playbooks,
    ("/api/v1/playbooks/diff", "GET"): _diff_playbooks,
    ("/api/v1/violations/<int:violation_id>/acknowledge", "POST"): _acknowledge,
    ("/api/v1/approvals", "GET"): _list_approvals,
    ("/api/v1/approvals/<int:approval_id>", "POST"): _decide,
}

ROUTES.update(NOTIFY_ROUTES)
ROUTES.update(WEB_ROUTES)
ROUTES.update(FINANCE_ROUTES)

CALLERS = [("user", role, scope) for role, scope in ROLE_SCOPES.items()] + [
    ("agent", "agent", branch) for branch in BRANCHES
]


@pytest.fixture
def seeds(app, company) -> dict:
    """One open violation and one pending approval in SH01 and in CD01."""
    out = {"violations": {}, "approvals": {}, "flags": {}}
    now = datetime.now(UTC)
    with app.app_context():
        for code in ("SH01", "CD01"):
            branch = active_unit(code)
            violation = Violation(
                key=f"test:{code}",
                rule_id="r",
                kind="threshold",
                playbook_version=1,
                severity="warn",
                branch_id=branch.id,
                message={"en": "x", "zh": "x"},
                details={},
                status="open",
                occurred_at=now,
            )
            approval = Approval(
                event_id=uuid.uuid4(),
                rule_ids=["r"],
                branch_id=branch.id,
                approver_role="region_manager",
                status="pending",
            )
            flag = LaggingFlag(
                key=f"test:{code}",
                unit_code=code,
                unit_kind="branch",
                unit_path=branch.path,
                metric="win_rate",
                check="peers",
                period_kind="week",
                period_start=now.date(),
                period_end=now.date(),
                severity="warn",
                reason={"en": "x", "zh": "x"},
                details={},
                status="open",
            )
            db.session.add_all([violation, approval, flag])
            db.session.flush()
            out["violations"][code], out["approvals"][code] = violation.id, approval.id
            out["flags"][code] = flag.id
        db.session.commit()
    return out


def test_every_live_route_has_a_scope_rule(app):
    live = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
        if rule.rule not in PUBLIC
    }
    assert live == set(ROUTES), "add the new route to ROUTES with its scope rule"


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("kind,role,scope", CALLERS)
def test_scope_matrix(client, company, seeds, route, kind, role, scope):
    headers = company.user(role) if kind == "user" else company.agent(scope)
    ROUTES[route](Call(client, headers, kind, role, scope, seeds))
