"""Sign in, sign out, change your password."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import format_datetime, gettext

from hq_server.extensions import db
from hq_server.services import auth as auth_service
from hq_server.web import accounts
from hq_server.web.security import sign_in, sign_out

bp = Blueprint("auth", __name__)


def safe_next(target: str | None, default: str) -> str:
    """Return ``target`` when it is a path of this console, else ``default``."""
    if not target or not target.startswith("/console/") or "\\" in target or "//" in target:
        return default
    return target


def account_message(exc: accounts.AccountError) -> str:
    """Say in the page language why an account change was refused."""
    messages = {
        "too_short": gettext(
            "A password needs at least %(n)d characters.", n=accounts.MIN_PASSWORD_LENGTH
        ),
        "is_username": gettext("A password must not be the user name."),
        "wrong_current": gettext("The current password is not right."),
        "bad_role": gettext("Choose one of the roles."),
        "bad_scope": gettext("Choose an active unit as the scope."),
        "bad_name": gettext(
            "A name has at most %(n)d characters.", n=auth_service.MAX_DISPLAY_NAME
        ),
        "bad_email": gettext("Write the e-mail address like name@example.com."),
    }
    return messages.get(exc.code, str(exc))


@bp.route("/login", methods=("GET", "POST"))
def login():
    """Show the sign-in form; sign in with a name and password."""
    target = safe_next(request.values.get("next"), url_for("console.units.home"))
    if g.user is not None and request.method == "GET":
        return redirect(target)
    error = None
    username = request.form.get("username", "")
    if request.method == "POST":
        result = accounts.authenticate(username, request.form.get("password", ""))
        db.session.commit()  # the failure count and lock are kept either way
        if result.status == "ok":
            sign_in(result.user)
            return redirect(target)
        if result.status == "locked":
            error = gettext(
                "Too many failed attempts: this account is locked until %(time)s.",
                time=format_datetime(result.locked_until, "short"),
            )
        else:
            error = gettext("The user name or password is not right.")
    return render_template("console/login.html", error=error, username=username, next=target)


@bp.post("/logout")
def logout():
    """End the session."""
    sign_out()
    flash(gettext("You are signed out."), "ok")
    return redirect(url_for("console.auth.login"))


@bp.route("/password", methods=("GET", "POST"))
def password():
    """Change your own password (the other sessions of your account end)."""
    error = None
    if request.method == "POST":
        new = request.form.get("new_password", "")
        if new != request.form.get("confirm_password", ""):
            error = gettext("The two new passwords differ.")
        else:
            try:
                accounts.change_password(g.user, request.form.get("current_password", ""), new)
            except accounts.AccountError as exc:
                error = account_message(exc)
            else:
                db.session.commit()
                sign_in(g.user)
                flash(gettext("Your password was changed."), "ok")
                return redirect(url_for("console.units.home"))
    return render_template("console/password.html", error=error), 422 if error else 200
