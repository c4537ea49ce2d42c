"""Fixtures on the real services: one app per session.

``TEST_DATABASE_URL`` and ``REDIS_URL`` point at the services when set (CI);
otherwise an embedded PostgreSQL and Redis are started under instance/test.
The schema is built by the Alembic migrations, never by ``create_all``.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import text

from config.settings import Settings
from tests.factories import Company

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parent.parent
DATASET = (ROOT.parent / "shared" / "datasets" / "maven-crm").resolve()


@pytest.fixture(scope="session")
def dataset_dir() -> Path:
    if not (DATASET / "sales_teams.csv").exists():
        pytest.fail(f"the sample data set is missing at {DATASET}")
    return DATASET


TABLES = (
    "events",
    "deals",
    "daily_rollups",
    "seq_gaps",
    "agent_streams",
    "push_failures",
    "push_counts",
    "api_tokens",
    "users",
    "reps",
    "org_units",
    "job_outbox",
    "violations",
    "approvals",
    "playbooks",
    "lagging_flags",
    "targets",
    "notifications",
    "webhook_deliveries",
    "webhooks",
    "digests",
    "fx_rates",
    "unit_rollups",
    "weekly_rollups",
    "weekly_unit_rollups",
    "pipeline_changes",
    "pipeline_snapshots",
    "pipeline_cuts",
    "export_jobs",
)


def reset_tables(app) -> None:
    """Empty every table (tests and hypothesis examples start from nothing)."""
    from hq_server.extensions import db
    from hq_server.services import playbooks

    playbooks.forget_compiled()  # version numbers restart with the tables
    with app.app_context():
        db.session.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        db.session.commit()


def _reset_schema(url: str) -> None:
    libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(scope="session")
def services() -> Settings:
    """Resolve the test services (embedded when no URL is given) and reset the schema."""
    from hq_server.embedded import resolve_services

    base = Settings.for_tests()
    base = replace(
        base, instance_dir=ROOT / "instance" / "test", queue_name=f"test-{uuid.uuid4().hex[:8]}"
    )
    resolved = resolve_services(base)
    _reset_schema(resolved.database_url)
    return resolved


@pytest.fixture(scope="session")
def app(services):
    from hq_server import create_app
    from hq_server.cli import upgrade_database
    from hq_server.extensions import db

    app = create_app(services)
    upgrade_database(app)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def ctx(app):
    """An app context for service-level calls."""
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def company(app) -> Company:
    """A small company: 2 regions, 3 branches, 2 reps each, with tokens per role."""
    return Company.create(app)


@pytest.fixture
def queue(app):
    """The app's RQ queue on the real Redis, emptied after the test."""
    from hq_server.jobs.queue import get_queue

    with app.app_context():
        q = get_queue()
    yield q
    q.empty()
    for registry in (q.failed_job_registry, q.finished_job_registry, q.started_job_registry):
        for job_id in registry.get_job_ids():
            registry.remove(job_id, delete_job=True)
