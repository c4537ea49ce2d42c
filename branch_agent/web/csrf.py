"""A per-session token that every POST form must send back."""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session
from flask_babel import gettext

FIELD = "csrf_token"


def csrf_token() -> str:
    """Return the session's token, creating it on first use."""
    if FIELD not in session:
        session[FIELD] = secrets.token_urlsafe(32)
    return session[FIELD]


def check_csrf() -> None:
    """Refuse a POST whose form does not carry the session's token."""
    if request.method != "POST":
        return
    expected = session.get(FIELD)
    sent = request.form.get(FIELD, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, gettext("This form has expired. Go back, reload the page and try again."))
