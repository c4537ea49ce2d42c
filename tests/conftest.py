"""Test-wide settings: real PostgreSQL and Redis, from the environment or embedded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

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
