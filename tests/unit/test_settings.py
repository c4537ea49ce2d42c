"""Settings come from the environment with working defaults."""

from __future__ import annotations

import pytest

from config.settings import Settings, SettingsError
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


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY must be at least 1, got 0"),
        ({"HQ_MAX_BATCH_EVENTS": "-5"}, "HQ_MAX_BATCH_EVENTS must be at least 1"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be one of DEBUG, INFO"),
        ({"DATABASE_URL": "mysql://hq:s3cret@db/hq"}, "DATABASE_URL must be a URL starting with"),
        ({"REDIS_URL": "127.0.0.1:6379"}, "REDIS_URL must be a URL starting with redis://"),
        ({"HQ_DEFAULT_TIMEZONE": "Mars/Base"}, "HQ_DEFAULT_TIMEZONE must be an IANA time zone"),
        ({"HQ_REPORTING_CURRENCY": "yuan"}, "HQ_REPORTING_CURRENCY must be an ISO 4217 code"),
    ],
)
def test_a_setting_that_cannot_work_is_named_with_the_reason(env, message):
    with pytest.raises(SettingsError, match=message) as info:
        Settings.from_env(env)
    assert "s3cret" not in str(info.value)  # a password in a URL is never repeated


def test_settings_that_can_work_are_taken():
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgres://hq@db/hq",
            "REDIS_URL": "unix:///run/redis.sock",
            "HQ_FUTURE_SKEW_SECONDS": "0",
            "HQ_DEFAULT_TIMEZONE": "Europe/Berlin",
            "HQ_REPORTING_CURRENCY": "eur",
            "LOG_LEVEL": "warning",
        }
    )
    assert settings.future_skew_seconds == 0 and settings.reporting_currency == "EUR"
    assert (settings.default_timezone, settings.log_level) == ("Europe/Berlin", "WARNING")


def test_serving_without_a_long_secret_key_is_warned_about():
    assert "SECRET_KEY is not set" in Settings.from_env({}).secret_key_warning()
    assert "shorter than 32" in Settings.from_env({"SECRET_KEY": "hunter2"}).secret_key_warning()
    assert Settings.from_env({"SECRET_KEY": "k" * 32}).secret_key_warning() is None
