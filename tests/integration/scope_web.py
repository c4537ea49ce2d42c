"""Scope rules of the web console's routes, for the route matrix.

A user caller gets a console session of their own (the signed session cookie
the sign-in form would set); an agent caller has only its bearer token, which
pages never accept: every page sends it to the sign-in form. Out of scope is
answered like "does not exist" (404), a role that may not act gets 403 —
exactly as the API answers. This module must not import the matrix module.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.integration.test_scope_matrix import Call

UNITS = ("HQ", "EAST", "WEST", "SH01", "HZ01", "CD01")
REGIONS = ("EAST", "WEST")
BRANCHES = ("SH01", "HZ01", "CD01")
SUBTREES = {
    "HQ": set(UNITS),
    "EAST": {"EAST", "SH01", "HZ01"},
    "WEST": {"WEST", "CD01"},
}
MANAGERS = {"branch_manager", "region_manager", "hq_manager", "admin"}
PUBLISHERS = {"hq_manager", "admin"}
DECIDERS = {"region_manager", "hq_manager", "admin"}  # the seeds' approver role, or HQ
LOGIN = "/console/login"


def visible(scope: str, unit: str) -> bool:
    """Tell whether a caller scoped to ``scope`` may see ``unit``."""
    return unit in SUBTREES.get(scope, {scope})


def _browser(c: Call):
    """Return a client for the caller: signed in for a user, bearer header only for an agent."""
    from hq_server.web import accounts

    app = c.client.application
    client = app.test_client()
    if c.kind == "user":
        with app.app_context():
            user = accounts.find_user(f"{c.role}-user")
            stamp = accounts.session_stamp(user, app.secret_key)
            uid = user.id
        with client.session_transaction() as session:
            session.update(uid=uid, stamp=stamp)
    else:
        client.environ_base["HTTP_AUTHORIZATION"] = c.headers["Authorization"]
    return client


def _token(client) -> str:
    for page in ("/console/playbook", LOGIN):
        answer = client.get(page)
        if answer.status_code == 200:
            found = re.search(r'name="csrf-token" content="([^"]+)"', answer.get_data(as_text=True))
            return found.group(1)
    raise AssertionError("no page with a form token")


def _post(client, path: str, data: dict | None = None):
    return client.post(path, data={"csrf_token": _token(client), **(data or {})})


def _to_login(answer) -> bool:
    return answer.status_code == 302 and answer.location.startswith(LOGIN)


def _pages(path_of, units, may=lambda c, unit: True):
    """Check a page per unit: 200 when visible (and allowed), 404 when not; agents sign in."""

    def check(c: Call):
        client = _browser(c)
        for unit in units:
            answer = client.get(path_of(unit))
            if c.kind != "user":
                assert _to_login(answer), (unit, answer.status_code)
            elif visible(c.scope, unit) and may(c, unit):
                assert answer.status_code == 200, (c.role, unit, answer.status_code)
            else:
                assert answer.status_code == 404, (c.role, c.scope, unit, answer.status_code)

    return check


def _for_users(path: str, status: int):
    def check(c: Call):
        answer = _browser(c).get(path)
        if c.kind != "user":
            assert _to_login(answer)
        else:
            assert answer.status_code == status, (c.role, answer.status_code)

    return check


def _login_form(c: Call):
    client = _browser(c)
    answer = client.get(LOGIN)
    if c.kind == "user":
        assert answer.status_code == 302  # already signed in
        client = c.client.application.test_client()
    assert client.get(LOGIN).status_code == 200


def _login_post(c: Call):
    client = c.client.application.test_client()
    form = {"username": f"{c.role}-user", "password": "not the password"}
    assert client.post(LOGIN, data=form).status_code == 400  # no CSRF token
    refused = _post(client, LOGIN, form)
    assert refused.status_code == 200 and "not right" in refused.get_data(as_text=True)


def _logout(c: Call):
    client = _browser(c)
    answer = _post(client, "/console/logout")
    assert _to_login(answer)
    assert _to_login(client.get("/console/inbox"))


def _password_post(c: Call):
    client = _browser(c)
    form = {"current_password": "wrong", "new_password": "x" * 12, "confirm_password": "x" * 12}
    answer = _post(client, "/console/password", form)
    assert _to_login(answer) if c.kind != "user" else answer.status_code == 422


def _language(c: Call):
    answer = _browser(c).get("/console/lang/zh_CN?next=/console/inbox")
    assert answer.status_code == 302 and answer.location == "/console/inbox"


def _home(c: Call):
    answer = _browser(c).get("/console/")
    if c.kind != "user":
        assert _to_login(answer)
        return
    assert answer.status_code == 302
    assert (
        c.scope in answer.location or "overview" in answer.location or "finance" in answer.location
    )


def _root(c: Call):
    answer = _browser(c).get("/")
    assert answer.status_code == 302 and answer.location == "/console/"


def _static(c: Call):
    with _browser(c).get("/console/static/console.js") as answer:
        assert answer.status_code == 200 and answer.mimetype == "text/javascript"


def _seed_deals(c: Call) -> dict[str, str]:
    from hq_server.extensions import db
    from hq_server.models import Deal
    from hq_server.services.org import active_unit

    out = {}
    with c.client.application.app_context():
        for code in ("SH01", "CD01"):
            deal = Deal(id=uuid.uuid4(), branch_id=active_unit(code).id, name=f"deal {code}")
            db.session.add(deal)
            out[code] = str(deal.id)
        db.session.commit()
    return out


def _deals(c: Call):
    client = _browser(c)
    for branch, deal_id in _seed_deals(c).items():
        answer = client.get(f"/console/deals/{deal_id}")
        if c.kind != "user":
            assert _to_login(answer)
        else:
            assert answer.status_code == (200 if visible(c.scope, branch) else 404), c.role


def _finance_export(c: Call):
    client = _browser(c)
    for unit in ("HQ", "EAST", "CD01"):
        answer = client.get(f"/console/finance/export?unit={unit}&format=csv")
        if c.kind != "user":
            assert _to_login(answer)
        elif visible(c.scope, unit):
            assert answer.status_code == 200 and answer.mimetype == "text/csv"
        else:
            assert answer.status_code == 404


def _publish(c: Call):
    answer = _post(_browser(c), "/console/playbook", {"source": "version: [", "action": "check"})
    if c.kind != "user":
        assert _to_login(answer)
    else:
        assert answer.status_code == (422 if c.role in PUBLISHERS else 403), c.role


def _mark_read(c: Call):
    answer = _post(_browser(c), "/console/inbox/read")
    assert _to_login(answer) if c.kind != "user" else answer.status_code == 302


def _acting_on(kind: str, path: str, allowed: set[str], data: dict):
    """Check a POST on each seeded item: login, 403 for the role, 404 out of scope, 302 done."""

    def check(c: Call):
        client = _browser(c)
        for branch, item_id in c.seeds[kind].items():
            answer = _post(client, path.format(item_id), data)
            if c.kind != "user":
                assert _to_login(answer)
            elif not visible(c.scope, branch):
                assert answer.status_code == (403 if c.role not in MANAGERS else 404), c.role
            elif c.role in allowed:
                assert answer.status_code == 302, (c.role, branch, answer.status_code)
            else:
                assert answer.status_code == 403, (c.role, branch)

    return check


def _decide(c: Call):
    client = _browser(c)
    for branch, approval_id in c.seeds["approvals"].items():
        answer = _post(client, f"/console/approvals/{approval_id}", {"decision": "refuse"})
        if c.kind != "user":
            assert _to_login(answer)
        elif not visible(c.scope, branch):
            assert answer.status_code == 404, (c.role, branch)
        else:
            assert answer.status_code == (302 if c.role in DECIDERS else 403), (c.role, branch)


def _admin_page(c: Call):
    answer = _browser(c).get("/console/admin/users")
    if c.kind != "user":
        assert _to_login(answer)
    else:
        assert answer.status_code == (200 if c.role == "admin" else 403), c.role


def _admin_post(c: Call):
    client = _browser(c)
    form = {"username": "", "role": "staff", "scope": "SH01", "password": "x" * 12}
    answer = _post(client, "/console/admin/users", form)
    if c.kind != "user":
        assert _to_login(answer)
    else:
        assert answer.status_code == (422 if c.role == "admin" else 403), c.role


def _admin_update(c: Call):
    from hq_server.web import accounts

    with c.client.application.app_context():
        staff_id = accounts.find_user("staff-user").id
    answer = _post(_browser(c), f"/console/admin/users/{staff_id}", {"action": "unlock"})
    if c.kind != "user":
        assert _to_login(answer)
    else:
        assert answer.status_code == (302 if c.role == "admin" else 403), c.role


def _rep_path(branch: str) -> str:
    return f"/console/reps/{branch}-001"


# Route -> the check of every caller against it (merged into the matrix's ROUTES).
WEB_ROUTES = {
    ("/", "GET"): _root,
    ("/console/static/<path:filename>", "GET"): _static,
    ("/console/login", "GET"): _login_form,
    ("/console/login", "POST"): _login_post,
    ("/console/logout", "POST"): _logout,
    ("/console/password", "GET"): _for_users("/console/password", 200),
    ("/console/password", "POST"): _password_post,
    ("/console/lang/<code>", "GET"): _language,
    ("/console/", "GET"): _home,
    ("/console/overview", "GET"): _pages(lambda u: "/console/overview", ["HQ"]),
    ("/console/regions/<code>", "GET"): _pages(lambda u: f"/console/regions/{u}", REGIONS),
    ("/console/branches/<code>", "GET"): _pages(lambda u: f"/console/branches/{u}", BRANCHES),
    ("/console/reps/<code>", "GET"): _pages(_rep_path, BRANCHES),
    ("/console/deals/<deal_id>", "GET"): _deals,
    ("/console/finance", "GET"): _pages(lambda u: f"/console/finance?unit={u}", UNITS),
    ("/console/finance/export", "GET"): _finance_export,
    ("/console/playbook", "GET"): _for_users("/console/playbook", 200),
    ("/console/playbook", "POST"): _publish,
    ("/console/inbox", "GET"): _for_users("/console/inbox", 200),
    ("/console/inbox/read", "POST"): _mark_read,
    ("/console/flags/<int:flag_id>/acknowledge", "POST"): _acting_on(
        "flags", "/console/flags/{}/acknowledge", MANAGERS, {"note": "seen"}
    ),
    ("/console/violations/<int:violation_id>/acknowledge", "POST"): _acting_on(
        "violations", "/console/violations/{}/acknowledge", MANAGERS, {"note": "seen"}
    ),
    ("/console/approvals/<int:approval_id>", "POST"): _decide,
    ("/console/admin/users", "GET"): _admin_page,
    ("/console/admin/users", "POST"): _admin_post,
    ("/console/admin/users/<int:user_id>", "POST"): _admin_update,
}
