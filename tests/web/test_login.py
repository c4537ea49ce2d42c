"""Signing in and out: hashed passwords, CSRF on every form, lockout, sessions that end."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hq_server.extensions import db
from hq_server.models import User
from hq_server.web import accounts
from tests.web.conftest import PASSWORD, csrf_token, login, post_form


def test_a_page_asks_an_anonymous_visitor_to_sign_in_and_comes_back_after(client, company):
    answer = client.get("/console/regions/EAST?from=2026-11-01")

    assert answer.status_code == 302
    assert answer.location.startswith("/console/login?next=/console/regions/EAST")
    token = csrf_token(client, answer.location)
    signed = client.post(
        "/console/login",
        data={
            "csrf_token": token,
            "username": "region_manager-user",
            "password": PASSWORD,
            "next": "/console/regions/EAST?from=2026-11-01",
        },
    )
    assert signed.status_code == 302
    assert signed.location == "/console/regions/EAST?from=2026-11-01"
    assert client.get(signed.location).status_code == 200


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/api/v1/fx"])
def test_after_sign_in_the_console_only_sends_you_to_its_own_pages(client, company, target):
    answer = client.post(
        "/console/login",
        data={
            "csrf_token": csrf_token(client),
            "username": "finance-user",
            "password": PASSWORD,
            "next": target,
        },
    )

    assert answer.status_code == 302 and answer.location == "/console/"


def test_passwords_are_stored_as_salted_hashes(app, company):
    with app.app_context():
        hashes = db.session.scalars(select(User.password_hash)).all()

    assert len(hashes) == 6 and all(h.startswith("scrypt:") for h in hashes)
    assert PASSWORD not in "".join(hashes)
    assert len(set(hashes)) == 6  # the same password, a different salt for each user


def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(client, company):
    wrong = login(client, "hq_manager", "not the password")
    unknown = client.post(
        "/console/login",
        data={"csrf_token": csrf_token(client), "username": "nobody", "password": "x" * 12},
    )

    assert wrong.status_code == unknown.status_code == 200
    message = "The user name or password is not right."
    assert message in wrong.get_data(as_text=True)
    assert message in unknown.get_data(as_text=True)


def test_a_form_without_its_csrf_token_is_refused(client, company):
    answer = client.post(
        "/console/login", data={"username": "hq_manager-user", "password": PASSWORD}
    )

    assert answer.status_code == 400
    assert "This form has expired" in answer.get_data(as_text=True)
    assert client.get("/console/overview").status_code == 302  # still signed out


def test_a_forged_csrf_token_is_refused_on_a_signed_in_form(signed_in):
    client = signed_in("hq_manager")

    answer = client.post("/console/logout", data={"csrf_token": "forged"})

    assert answer.status_code == 400
    assert client.get("/console/overview").status_code == 200  # not signed out


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(app, client, company):
    for _ in range(accounts.MAX_FAILED_LOGINS - 1):
        assert "not right" in login(client, "branch_manager", "wrong password").text
    locking = login(client, "branch_manager", "wrong password")
    assert "locked until" in locking.get_data(as_text=True)

    refused = login(client, "branch_manager")

    assert "locked until" in refused.get_data(as_text=True)
    assert client.get("/console/overview").status_code == 302  # not signed in
    with app.app_context():
        user = accounts.find_user("branch_manager-user")
        assert user.locked_until > datetime.now(UTC) + timedelta(minutes=14)


def test_a_lock_runs_out_and_a_good_sign_in_clears_the_failures(app, client, company):
    with app.app_context():
        user = accounts.find_user("branch_manager-user")
        user.locked_until = datetime.now(UTC) - timedelta(seconds=1)
        user.failed_logins = 3
        db.session.commit()

    assert login(client, "branch_manager").status_code == 302
    with app.app_context():
        user = accounts.find_user("branch_manager-user")
        assert user.failed_logins == 0 and user.locked_until is None
        assert user.last_login_at is not None


def test_an_admin_unlocks_a_locked_account(app, company, signed_in):
    client = signed_in("admin")
    with app.app_context():
        user = accounts.find_user("staff-user")
        user.locked_until = datetime.now(UTC) + timedelta(minutes=10)
        db.session.commit()
        user_id = user.id

    answer = post_form(
        client, f"/console/admin/users/{user_id}", {"action": "unlock"}, "/console/admin/users"
    )

    assert answer.status_code == 302
    assert login(app.test_client(), "staff").status_code == 302


def test_sign_out_ends_the_session(signed_in):
    client = signed_in("finance")

    answer = post_form(client, "/console/logout", {})

    assert answer.status_code == 302 and answer.location == "/console/login"
    assert client.get("/console/finance").status_code == 302


def test_changing_the_password_ends_the_other_sessions(app, signed_in):
    here, elsewhere = signed_in("region_manager"), signed_in("region_manager")
    new = "a much longer secret"

    answer = post_form(
        here,
        "/console/password",
        {"current_password": PASSWORD, "new_password": new, "confirm_password": new},
        "/console/password",
    )

    assert answer.status_code == 302
    assert here.get("/console/regions/EAST").status_code == 200
    assert elsewhere.get("/console/regions/EAST").status_code == 302
    assert login(app.test_client(), "region_manager", new).status_code == 302
    assert login(app.test_client(), "region_manager").status_code == 200  # the form again


@pytest.mark.parametrize(
    "form,message",
    [
        ({"current_password": "wrong", "new_password": "x" * 12}, "current password is not"),
        ({"current_password": PASSWORD, "new_password": "short"}, "at least 10 characters"),
    ],
)
def test_a_bad_password_change_is_refused_with_a_reason(signed_in, form, message):
    client = signed_in("staff")
    form = {**form, "confirm_password": form["new_password"]}

    answer = post_form(client, "/console/password", form, "/console/password")

    assert answer.status_code == 422 and message in answer.get_data(as_text=True)


def test_a_deactivated_user_is_signed_out_at_the_next_request(app, signed_in):
    client = signed_in("hq_manager")
    with app.app_context():
        accounts.deactivate(accounts.find_user("hq_manager-user"))
        db.session.commit()

    assert client.get("/console/overview").status_code == 302
    assert login(app.test_client(), "hq_manager").status_code == 200  # the form again


def test_the_session_cookie_is_http_only_and_same_site(client, company):
    answer = login(client, "finance")

    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("hq_console=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # the test server speaks plain HTTP


def test_behind_https_the_session_cookie_is_secure(services, company):
    from hq_server import create_app

    secure = create_app(replace(services, public_url="https://hq.example.com"))
    client = secure.test_client()

    answer = login(client, "finance")

    assert "; Secure" in answer.headers["Set-Cookie"]
    with secure.app_context():
        db.engine.dispose()


def test_the_api_still_takes_bearer_tokens_without_any_csrf_token(client, company):
    answer = client.post(
        "/api/v1/fx",
        json={"currency": "USD", "day": "2026-11-01", "rate": "7.1"},
        headers=company.user("finance"),
    )

    assert answer.status_code == 201
