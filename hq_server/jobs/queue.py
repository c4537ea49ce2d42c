"""RQ queues with the JSON serializer (pickle in Redis would be code execution)."""

from __future__ import annotations

from flask import current_app
from redis import Redis
from rq import Queue, Retry
from rq.serializers import JSONSerializer

RETRY = Retry(max=3, interval=[10, 60, 300])


def redis_connection(url: str) -> Redis:
    """Return a Redis client for ``url`` with bounded timeouts."""
    return Redis.from_url(
        url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
    )


def get_queue(connection: Redis | None = None) -> Queue:
    """Return the app's RQ queue."""
    settings = current_app.config["SETTINGS"]
    connection = connection or redis_connection(settings.redis_url)
    return Queue(
        settings.queue_name,
        connection=connection,
        serializer=JSONSerializer,
        default_timeout=settings.job_timeout_seconds,
    )
