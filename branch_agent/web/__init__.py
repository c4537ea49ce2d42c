"""The staff page: record visits, calls, quotes and deal changes; fix what HQ refused.

``create_staff_app`` builds it; ``branch-agent serve`` runs it on 127.0.0.1.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from flask import Flask, render_template
from flask_babel import Babel
from werkzeug.exceptions import HTTPException

from branch_agent.outbox import Outbox
from branch_agent.web import entries, i18n, rejected, templating, views
from branch_agent.web.csrf import check_csrf
from branch_agent.web.store import close_outbox

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"


def create_staff_app(
    data_dir: Path,
    *,
    sync_status: Callable[[], dict] | None = None,
    secret_key: str | None = None,
) -> Flask:
    """Create the staff page for the agent whose store is in ``data_dir``.

    ``sync_status`` returns the live sync state (same keys as the meta table)
    when the sync loop runs in this process; else the stored state is shown.
    """
    data_dir = Path(data_dir)
    app = Flask(__name__)
    app.config.from_mapping(
        DATA_DIR=data_dir,
        SECRET_KEY=secret_key or stored_secret(data_dir),
        SYNC_STATUS=sync_status,
        # HQ may run on the same host: cookies ignore the port, so use our own name.
        SESSION_COOKIE_NAME="branch_agent_session",
        SESSION_COOKIE_SAMESITE="Lax",
        BABEL_DEFAULT_LOCALE="en",
    )
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True
    babel = Babel(app, locale_selector=i18n.select_locale)
    babel.domain_instance = i18n.CatalogDomain(TRANSLATIONS)
    app.teardown_appcontext(close_outbox)
    app.before_request(check_csrf)
    templating.register(app)
    for blueprint in (views.bp, entries.bp, rejected.bp, i18n.bp):
        app.register_blueprint(blueprint)
    app.register_error_handler(400, _bad_request)
    return app


def stored_secret(data_dir: Path) -> str:
    """Return the session key kept in the store, creating it on first start."""
    with Outbox(data_dir) as outbox:
        key = outbox.get_meta("web_secret")
        if key is None:
            key = secrets.token_hex(32)
            outbox.set_meta(web_secret=key)
    return key


def _bad_request(error: HTTPException):
    return render_template("error.html", error=error), 400
