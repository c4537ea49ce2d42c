"""The zero-config default: real PostgreSQL and Redis started from pip wheels."""

from __future__ import annotations

import psycopg
import redis

from hq_server.embedded import start_postgres, start_redis


def test_embedded_postgres_and_redis_start_and_answer(tmp_path):
    db_url = start_postgres(tmp_path / "pg", database="hq_embedded")
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()[0]
        assert int(version) >= 140000
        assert conn.execute("SELECT current_database()").fetchone()[0] == "hq_embedded"
    redis_url = start_redis(tmp_path / "redis")
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        # A second start joins the running server instead of starting another.
        assert start_redis(tmp_path / "redis") == redis_url
    finally:
        client.close()
