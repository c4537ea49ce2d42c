"""Settings come from the environment with working defaults."""

from __future__ import annotations

import pytest

from config.settings import Settings
from hq_server.embedded import normalize_database_url


def test_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings.database_url is None and settings.redis_url is None
    assert settings.max_batch_events == 1000
    assert len(settings.secret_key) == 64


def test_values_are_read_and_checked():
    settings = Settings.from_env(
        {"DATABASE_URL": "postgresql:///hq", "HQ_MAX_BATCH_EVENTS": "50", "LOG_LEVEL": "debug"}
    )
    assert (settings.database_url, settings.max_batch_events, settings.log_level) == (
        "postgresql:///hq",
        50,
        "DEBUG",
    )
    with pytest.raises(ValueError, match="HQ_MAX_BATCH_EVENTS must be an integer"):
        Settings.from_env({"HQ_MAX_BATCH_EVENTS": "many"})


def test_flags_are_read_and_checked():
    assert Settings.from_env({}).db_pre_ping is True
    assert Settings.from_env({"HQ_DB_PRE_PING": "0"}).db_pre_ping is False
    assert Settings.from_env({"HQ_DB_PRE_PING": " Yes "}).db_pre_ping is True
    with pytest.raises(ValueError, match="HQ_DB_PRE_PING must be 1 or 0"):
        Settings.from_env({"HQ_DB_PRE_PING": "sometimes"})


def test_database_urls_use_the_psycopg3_driver():
    assert normalize_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_database_url("postgresql:///test") == "postgresql+psycopg:///test"
    assert normalize_database_url("postgresql+psycopg:///x") == "postgresql+psycopg:///x"
