"""The job outbox: write work in the caller's transaction, hand it to RQ after commit."""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB

from hq_server.extensions import db
from hq_server.models import JobOutbox

log = logging.getLogger(__name__)


def add_job(key: str, func: str, *, again: bool = True, **kwargs) -> None:
    """Queue ``func(**kwargs)`` for after commit; a key already waiting is not added twice.

    With ``again`` a key whose job already finished is queued once more (a new
    rebuild); without it a finished key stays done (a periodic scan of a period).
    """
    from hq_server.jobs.tasks import TASKS

    if func not in TASKS:
        raise ValueError(f"unknown job {func!r}")
    db.session.execute(_ADD_AGAIN if again else _ADD_ONCE, {"k": key, "t": func, "kw": kwargs})


# Written out once: a large push adds a job, and building the statement cost more than
# running it.
_ADD = (
    "INSERT INTO job_outbox (key, task, kwargs, attempts) VALUES (:k, :t, :kw, 0) "
    "ON CONFLICT (key) DO "
)
_ADD_AGAIN = text(
    _ADD + "UPDATE SET done_at = NULL, enqueued_at = NULL, kwargs = EXCLUDED.kwargs, "
    "last_error = NULL WHERE job_outbox.done_at IS NOT NULL"
).bindparams(bindparam("kw", type_=JSONB))
_ADD_ONCE = text(_ADD + "NOTHING").bindparams(bindparam("kw", type_=JSONB))


def schedule_periodic(now: datetime | None = None) -> None:
    """Add this hour's scans to the outbox (once per hour, whoever asks)."""
    now = now or datetime.now(UTC)
    add_job(f"scan_timers:{now:%Y-%m-%dT%H}", "scan_timers", again=False)
    add_job(f"scan_lagging:{now:%Y-%m-%dT%H}", "scan_lagging", again=False)
    add_job(f"build_digests:{now:%Y-%m-%dT%H}", "build_digests", again=False)
    add_job(f"snapshot_pipeline:{now:%Y-%m-%dT%H}", "snapshot_pipeline", again=False)
    add_job(f"compact_rollups:{now:%Y-%m-%dT%H}", "compact_rollups", again=False)
    # Outbound messages go out every few minutes.
    slot = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    add_job(f"deliver_webhooks:{slot:%Y-%m-%dT%H:%M}", "deliver_webhooks", again=False)
    add_job(f"send_email:{slot:%Y-%m-%dT%H:%M}", "send_email", again=False)


def mark_done(key: str) -> None:
    """Record that the job with ``key`` finished (in the job's own transaction)."""
    db.session.execute(text("UPDATE job_outbox SET done_at = now() WHERE key = :k"), {"k": key})


def rq_job_id(key: str, attempt: int) -> str:
    """Return an RQ-safe job id for an outbox key (RQ allows letters, digits, _ and -)."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", key)[:80]
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:10]}-{attempt}"


def relay(queue, *, stale_after: timedelta = timedelta(minutes=30), limit: int = 100) -> int:
    """Enqueue committed outbox rows not yet handed to RQ (or lost by it); return how many.

    Rows handed over ``stale_after`` ago and still not done are handed over again:
    RQ can lose a job (a killed worker, an evicted key), and every job is idempotent.
    """
    from hq_server.jobs.queue import RETRY
    from hq_server.jobs.tasks import TASKS

    now = datetime.now(UTC)
    rows = db.session.scalars(
        select(JobOutbox)
        .where(JobOutbox.done_at.is_(None))
        .where((JobOutbox.enqueued_at.is_(None)) | (JobOutbox.enqueued_at < now - stale_after))
        .order_by(JobOutbox.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    sent = 0
    for row in rows:
        job_id = rq_job_id(row.key, row.attempts + 1)
        try:
            queue.enqueue_call(
                TASKS[row.task],
                kwargs={**row.kwargs, "outbox_key": row.key},
                job_id=job_id,
                retry=RETRY,
                failure_ttl=7 * 86400,
                result_ttl=86400,
            )
        except RedisError as exc:
            log.warning("Redis unavailable, %d job(s) wait in the outbox: %s", len(rows), exc)
            break
        row.enqueued_at, row.attempts = now, row.attempts + 1
        sent += 1
    db.session.commit()
    return sent
