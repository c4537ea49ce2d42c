"""The web console: pages for HQ, regions, branches and finance, in Chinese and English.

Pages are rendered on the server from the same service calls the API makes,
with a ``Principal`` built from the signed-in user, so every page applies the
API's scope. ``init_app`` binds the console to the HQ app.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, redirect, url_for

SESSION_HOURS = 12


def init_app(app: Flask) -> None:
    """Configure sessions, CSRF and languages, and register the console's pages."""
    from hq_server.web import i18n
    from hq_server.web.blueprint import console
    from hq_server.web.security import csrf

    settings = app.config["SETTINGS"]
    app.config.update(
        SESSION_COOKIE_NAME="hq_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Behind HTTPS (HQ_PUBLIC_URL https://…) the cookie never travels in clear text.
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
        # The API authenticates with bearer tokens, never with cookies: only the
        # console's forms are checked (its blueprint calls ``csrf.protect``).
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=SESSION_HOURS * 3600,
    )
    csrf.init_app(app)
    i18n.init_babel(app, settings.default_timezone)
    app.register_blueprint(console)
    app.add_url_rule("/", "console_root", lambda: redirect(url_for("console.units.home")))
