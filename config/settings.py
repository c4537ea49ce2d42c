"""Read the environment once; the only module that does.

Every setting has a default that works on a fresh machine. The README lists
them all. ``Settings.from_env()`` is called by the app factory and the CLI,
never at import time.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_INSTANCE_DIR = Path.cwd() / "instance"


class SettingsError(ValueError):
    """A setting of the environment cannot be used; the message names it and says why."""


def _int(env: dict[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


_FLAGS = {"1": True, "true": True, "yes": True, "on": True}
_FLAGS |= {"0": False, "false": False, "no": False, "off": False}


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return _FLAGS[raw.strip().lower()]
    except KeyError as exc:
        raise SettingsError(f"{name} must be 1 or 0 (true/false, yes/no), got {raw!r}") from exc


def _url(env: dict[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name) or None
    if raw is not None and not raw.startswith(tuple(f"{s}://" for s in schemes)):
        shown = raw.split("@")[-1]  # never echo a password
        raise SettingsError(
            f"{name} must be a URL starting with {' or '.join(f'{s}://' for s in schemes)}, "
            f"got {shown!r}"
        )
    return raw


def _choice(env: dict[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or default).upper()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _timezone(env: dict[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(
            f"{name} must be an IANA time zone, e.g. Asia/Shanghai, got {value!r}"
        ) from exc
    return value


def _currency(env: dict[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).upper()
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise SettingsError(f"{name} must be an ISO 4217 code, e.g. CNY, got {value!r}")
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_SECRET_KEY = 32


@dataclass(frozen=True)
class Settings:
    """Runtime settings of the HQ server."""

    database_url: str | None = None
    redis_url: str | None = None
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    secret_key_given: bool = False  # False: made up for this process (sessions end with it)
    instance_dir: Path = DEFAULT_INSTANCE_DIR
    log_level: str = "INFO"
    max_batch_events: int = 1000
    max_body_bytes: int = 8 * 1024 * 1024
    max_decompressed_bytes: int = 32 * 1024 * 1024
    future_skew_seconds: int = 24 * 3600
    default_timezone: str = "Asia/Shanghai"
    queue_name: str = "default"
    job_timeout_seconds: int = 1800
    bind: str = "127.0.0.1:8000"
    web_concurrency: int = 2
    reporting_currency: str = "CNY"
    # Session settings of every database connection: report queries are large enough for
    # PostgreSQL's JIT to cost more than it saves, and their sorts need more than 4 MB.
    pg_options: str = "-c jit=off -c work_mem=32MB"
    # Check a pooled connection with a round trip before each use: a restarted database
    # costs no failed request. Off, that round trip is saved, and after a restart the
    # first request to meet a dropped connection fails (the pool then renews the rest).
    db_pre_ping: bool = True
    smtp_url: str | None = None
    mail_from: str = "hq@localhost"
    public_url: str = "http://127.0.0.1:8000"
    testing: bool = False

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Build settings from the process environment (or the mapping given)."""
        env = dict(os.environ if environ is None else environ)
        secret = env.get("SECRET_KEY") or secrets.token_hex(32)
        return cls(
            database_url=_url(
                env, "DATABASE_URL", ("postgresql", "postgres", "postgresql+psycopg")
            ),
            redis_url=_url(env, "REDIS_URL", ("redis", "rediss", "unix")),
            secret_key=secret,
            secret_key_given=bool(env.get("SECRET_KEY")),
            instance_dir=Path(env.get("HQ_INSTANCE_DIR") or DEFAULT_INSTANCE_DIR).resolve(),
            log_level=_choice(env, "LOG_LEVEL", "INFO", LOG_LEVELS),
            max_batch_events=_int(env, "HQ_MAX_BATCH_EVENTS", 1000),
            max_body_bytes=_int(env, "HQ_MAX_BODY_BYTES", 8 * 1024 * 1024),
            pg_options=env.get("HQ_PG_OPTIONS", "-c jit=off -c work_mem=32MB"),
            db_pre_ping=_flag(env, "HQ_DB_PRE_PING", True),
            max_decompressed_bytes=_int(env, "HQ_MAX_DECOMPRESSED_BYTES", 32 * 1024 * 1024),
            future_skew_seconds=_int(env, "HQ_FUTURE_SKEW_SECONDS", 24 * 3600, minimum=0),
            default_timezone=_timezone(env, "HQ_DEFAULT_TIMEZONE", "Asia/Shanghai"),
            queue_name=env.get("HQ_QUEUE") or "default",
            job_timeout_seconds=_int(env, "HQ_JOB_TIMEOUT", 1800),
            bind=env.get("HQ_BIND") or "127.0.0.1:8000",
            web_concurrency=_int(env, "WEB_CONCURRENCY", 2),
            reporting_currency=_currency(env, "HQ_REPORTING_CURRENCY", "CNY"),
            smtp_url=env.get("SMTP_URL") or None,
            mail_from=env.get("MAIL_FROM") or "hq@localhost",
            public_url=(env.get("HQ_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/"),
        )

    @classmethod
    def for_tests(cls, environ: dict[str, str] | None = None) -> Settings:
        """Build settings for the test suite: the test database and Redis."""
        env = dict(os.environ if environ is None else environ)
        base = cls.from_env(env)
        return replace(
            base,
            database_url=env.get("TEST_DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            secret_key="test-secret",
            testing=True,
        )

    def secret_key_warning(self) -> str | None:
        """Say what an unset or short ``SECRET_KEY`` costs in production, if it is so."""
        if not self.secret_key_given:
            return (
                "SECRET_KEY is not set: console sign-ins end whenever the server restarts, and "
                "servers behind one load balancer do not share them; set it to a long random "
                "value, e.g. python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        if len(self.secret_key) < MIN_SECRET_KEY:
            return (
                f"SECRET_KEY is shorter than {MIN_SECRET_KEY} characters: console sessions are "
                "easier to forge"
            )
        return None

    def child_env(self) -> dict[str, str]:
        """Return this process's environment pointing children at the same services."""
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url or "",
            REDIS_URL=self.redis_url or "",
            SECRET_KEY=self.secret_key,
            HQ_INSTANCE_DIR=str(self.instance_dir),
        )
        return env

    def with_urls(self, database_url: str, redis_url: str) -> Settings:
        """Return a copy with resolved service URLs."""
        return replace(self, database_url=database_url, redis_url=redis_url)
