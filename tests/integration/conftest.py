"""Integration tests start every test on empty tables."""

from __future__ import annotations

import pytest

from tests.conftest import reset_tables


@pytest.fixture(autouse=True)
def clean_tables(app):
    """Start every test on empty tables."""
    reset_tables(app)
