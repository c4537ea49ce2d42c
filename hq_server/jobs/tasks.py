"""Job functions: thin, idempotent calls into services, keyed by their outbox row."""

from __future__ import annotations

import logging

from hq_server.jobs.context import app_context

log = logging.getLogger(__name__)


def _run(call, outbox_key: str | None) -> dict:
    """Run ``call()`` in the app, mark its outbox row done in the same transaction, commit."""
    from hq_server.extensions import db
    from hq_server.jobs.outbox import mark_done

    with app_context():
        result = call()
        if outbox_key:
            mark_done(outbox_key)
        db.session.commit()
    return result


def rebuild_rollups(branch: str | None = None, outbox_key: str | None = None) -> dict:
    """Recompute projections and rollups from the event log (one branch or all)."""
    from hq_server.services.rebuild import rebuild_all, rebuild_branch

    replayed = _run(lambda: rebuild_branch(branch) if branch else rebuild_all(), outbox_key)
    return {"branch": branch, "events": replayed}


def scan_timers(outbox_key: str | None = None) -> dict:
    """Run the playbook's timer rules (SLA, quota, stall) over every branch."""
    from hq_server.services.scans import scan_timers as run_scan

    return _run(run_scan, outbox_key)


def scan_lagging(outbox_key: str | None = None) -> dict:
    """Find lagging branches, regions and reps for the last finished week."""
    from hq_server.services.lagging import scan_lagging as run_scan

    return _run(run_scan, outbox_key)


def snapshot_pipeline(outbox_key: str | None = None) -> dict:
    """Take the pipeline's due midnight cuts (for fast as-of reads)."""
    from hq_server.services.pipeline_history import snapshot_pipeline as take

    return _run(take, outbox_key)


def compact_rollups(outbox_key: str | None = None) -> dict:
    """Fold the stripes of settled region and HQ rollup rows (fewer rows per read)."""
    from hq_server.services.compaction import compact_unit_rollups

    return _run(compact_unit_rollups, outbox_key)


def build_export(export_id: str, outbox_key: str | None = None) -> dict:
    """Build one requested spreadsheet."""
    from hq_server.services.export_jobs import build

    return _run(lambda: build(export_id), outbox_key)


# The functions the outbox may name; the relay refuses anything else.
TASKS = {
    "rebuild_rollups": rebuild_rollups,
    "scan_timers": scan_timers,
    "scan_lagging": scan_lagging,
    "snapshot_pipeline": snapshot_pipeline,
    "compact_rollups": compact_rollups,
    "build_export": build_export,
}

# Notifications, webhooks and digests live in their own module.
from hq_server.jobs.notify_tasks import NOTIFY_TASKS  # noqa: E402

TASKS.update(NOTIFY_TASKS)
