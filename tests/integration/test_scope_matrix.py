"""Every route x every role x in/out of scope, generated from the live route list."""

from __future__ import annotations

import pytest

from tests.factories import ROLE_SCOPES, EventMaker, push

UNITS = ("HQ", "EAST", "WEST", "SH01", "HZ01", "CD01")
SUBTREES = {
    "HQ": set(UNITS),
    "EAST": {"EAST", "SH01", "HZ01"},
    "WEST": {"WEST", "CD01"},
    "SH01": {"SH01"},
}
PUBLIC = {"/healthz", "/api/v1/openapi.json", "/static/<path:filename>"}


def _get_funnel(client, headers, unit):
    return client.get(f"/api/v1/funnel?unit={unit}", headers=headers)


def _post_push(client, headers, unit):
    return push(client, headers, [EventMaker(f"{unit}-001").deal_opened()])


def _get_pull(client, headers, unit):
    return client.get("/api/v1/sync/pull", headers=headers)


# Route -> (how to call it for a unit, which callers may use it at all).
ROUTES = {
    ("/api/v1/funnel", "GET"): (_get_funnel, {"user", "agent"}),
    ("/api/v1/sync/push", "POST"): (_post_push, {"agent"}),
    ("/api/v1/sync/pull", "GET"): (_get_pull, {"agent"}),
}

CALLERS = [("user", role, scope) for role, scope in ROLE_SCOPES.items()] + [
    ("agent", "agent", branch) for branch in ("SH01", "HZ01", "CD01")
]


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
def test_scope_matrix(client, company, route, kind, role, scope):
    call, allowed_kinds = ROUTES[route]
    headers = company.user(role) if kind == "user" else company.agent(scope)
    if route[0] == "/api/v1/sync/pull":
        # The token names the branch: an agent gets its own branch's data, nothing else.
        resp = call(client, headers, scope)
        if kind not in allowed_kinds:
            assert resp.status_code == 403
            return
        body = resp.get_json()
        assert body["branch"]["code"] == scope
        assert body["reps"] and all(r["code"].startswith(f"{scope}-") for r in body["reps"])
        return
    for unit in UNITS:
        if route[0] == "/api/v1/sync/push":
            if unit not in ("SH01", "HZ01", "CD01"):
                continue
            # A push names no unit: the token's branch decides; another branch's rep is refused.
            resp = call(client, headers, unit)
            if kind not in allowed_kinds:
                assert resp.status_code == 403, (role, unit)
                continue
            status = resp.get_json()["results"][0]["status"]
            expected = "accepted" if unit == scope else "rejected"
            assert status == expected, (role, scope, unit)
            continue
        resp = call(client, headers, unit)
        in_scope = unit in SUBTREES.get(scope, {scope})
        if kind not in allowed_kinds:
            assert resp.status_code == 403
        elif in_scope:
            assert resp.status_code == 200, (role, scope, unit, resp.get_json())
            assert resp.get_json()["unit"]["code"] == unit
        else:
            assert resp.status_code == 404, (role, scope, unit)
            assert resp.get_json()["code"] == "not_found"
            assert "cohort" not in resp.get_json()
