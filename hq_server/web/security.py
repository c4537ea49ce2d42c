"""Who is signed in, what they may open, CSRF on every form, and safe response headers.

Every console view needs a signed-in, active user unless its endpoint is in
``PUBLIC``: a new page is protected without anyone remembering to do it.
"""

from __future__ import annotations

import logging
import time
from functools import wraps

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import BadRequest, HTTPException

from hq_server.api.errors import DATA_ERRORS, bad_value
from hq_server.extensions import db
from hq_server.models import User
from hq_server.services.scope import OutOfScope, Principal
from hq_server.services.violations import Forbidden
from hq_server.web import accounts

log = logging.getLogger(__name__)
csrf = CSRFProtect()

PUBLIC = {"console.auth.login", "console.i18n.switch_language", "console.static"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'; object-src 'none'"
)


def register(console: Blueprint) -> None:
    """Install the sign-in check, CSRF, headers and HTML error pages on the console."""
    console.before_request(_start)
    console.after_request(_headers)
    console.register_error_handler(CSRFError, _csrf_error)
    console.register_error_handler(OutOfScope, _not_found)
    console.register_error_handler(Forbidden, _forbidden)
    console.register_error_handler(HTTPException, _http_error)
    for kind in DATA_ERRORS:
        console.register_error_handler(kind, _bad_value)
    console.register_error_handler(Exception, _unexpected)


def sign_in(user: User) -> None:
    """Start a fresh session for ``user`` (nothing of the anonymous one is kept)."""
    lang = session.get("lang")
    session.clear()
    session.permanent = True
    session["uid"] = user.id
    session["stamp"] = accounts.session_stamp(user, current_app.secret_key)
    if lang:
        session["lang"] = lang


def sign_out() -> None:
    """End the session (the chosen language stays)."""
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def _load_user() -> User | None:
    uid = session.get("uid")
    if not isinstance(uid, int):
        return None
    user = db.session.get(User, uid)
    if user is None or not user.active:
        return None
    if not accounts.stamp_matches(user, current_app.secret_key, session.get("stamp", "")):
        return None  # the password changed since this session began
    return user


def principal_of(user: User) -> Principal:
    """Build the principal a signed-in user stands for (as their API token would)."""
    return Principal.from_user(user)


def _start():
    g.started = time.perf_counter()
    if request.endpoint == "console.static":
        return None
    g.user = _load_user()
    if g.user is None and session.get("uid") is not None:
        sign_out()
    if request.endpoint not in PUBLIC and g.user is None:
        return redirect(url_for("console.auth.login", next=request.full_path.rstrip("?")))
    if g.user is not None:
        g.principal = principal_of(g.user)
    csrf.protect()
    return None


def _headers(response):
    if request.endpoint == "console.static":
        return response
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cache-Control", "no-store")
    started = g.get("started")
    if started is not None:
        elapsed = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={elapsed:.1f}"
    return response


def roles_required(*roles: str):
    """Let only users of ``roles`` open the view (others get 403)."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if g.user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        wrapper.roles = roles
        return wrapper

    return decorator


def _page(status: int, title: str, message: str):
    return render_template("console/error.html", title=title, message=message), status


def _csrf_error(exc: CSRFError):
    return _page(
        400,
        gettext("This form has expired"),
        gettext("Go back, reload the page and try again."),
    )


def _not_found(exc: Exception):
    return _page(
        404, gettext("Not found"), gettext("There is no such page, or it is outside your scope.")
    )


def _forbidden(exc: Exception):
    return _page(403, gettext("Not allowed"), gettext("Your role may not do this."))


def _http_error(exc: HTTPException):
    if exc.code == 404:
        return _not_found(exc)
    if exc.code == 403:
        return _forbidden(exc)
    return _page(exc.code or 500, f"{exc.code} {exc.name}", exc.description or "")


def _bad_value(exc: Exception):
    log.warning("console: a value the database refused: %s", exc)
    db.session.rollback()
    return _http_error(BadRequest(bad_value(exc).message))


def _unexpected(exc: Exception):
    log.exception("console page failed")
    db.session.rollback()
    return _page(
        500,
        gettext("Something went wrong"),
        gettext("The error was logged. Try again in a moment."),
    )
