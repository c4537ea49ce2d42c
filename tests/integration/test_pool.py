"""Pooled database connections after the database dropped them (``HQ_DB_PRE_PING``)."""

from __future__ import annotations

from dataclasses import replace

import psycopg
import pytest
from sqlalchemy import exc, text

from hq_server import create_app
from hq_server.extensions import db


def _drop_pooled_connection(app, url: str) -> None:
    """Leave one connection in the app's pool whose server process was terminated."""
    with app.app_context():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.session.remove()  # back to the pool
    libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(libpq, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]


def _select_one(app) -> int:
    with app.app_context():
        try:
            return db.session.execute(text("SELECT 1")).scalar()
        finally:
            db.session.remove()


@pytest.mark.parametrize("pre_ping", [True, False])
def test_a_connection_the_database_dropped(services, pre_ping):
    app = create_app(replace(services, db_pre_ping=pre_ping))
    try:
        _drop_pooled_connection(app, services.database_url)
        if pre_ping:
            assert _select_one(app) == 1  # checked and replaced before use
        else:
            with pytest.raises(exc.OperationalError) as failed:
                _select_one(app)
            assert failed.value.connection_invalidated
        assert _select_one(app) == 1  # either way, the next use works
    finally:
        with app.app_context():
            db.engine.dispose()
