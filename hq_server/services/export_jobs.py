"""Spreadsheets built in the background: asked for, built by a worker, downloaded once ready.

A job runs with the scope of the user who asked, read again when it runs (a user who has
lost access by then gets a failed job, not the file). Only that user sees the job and its
file. Files are kept ``KEEP`` days.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete

from hq_server.extensions import db
from hq_server.jobs.outbox import add_job
from hq_server.models import ExportJob, User
from hq_server.services import exports, fx
from hq_server.services import pipeline as pipelines
from hq_server.services.pipeline_history import WindowError
from hq_server.services.scope import OutOfScope, Principal, resolve_unit

KEEP = timedelta(days=7)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
KINDS = ("pipeline",)
FORMATS = ("xlsx", "csv")


def request(principal: Principal, params: dict) -> ExportJob:
    """Queue an export for ``principal`` (the unit is checked now and again when it runs)."""
    resolve_unit(principal, params["unit"])
    job = ExportJob(id=uuid.uuid4(), user_id=principal.user_id, kind="pipeline", params=params)
    db.session.add(job)
    db.session.flush()
    add_job(f"build_export:{job.id}", "build_export", export_id=str(job.id))
    return job


def find(principal: Principal, export_id: uuid.UUID) -> ExportJob | None:
    """Return the caller's own export job (anyone else's is as good as missing)."""
    job = db.session.get(ExportJob, export_id)
    if job is None or job.user_id != principal.user_id:
        return None
    return job


def build(export_id: str) -> dict:
    """Build the file of one queued job (idempotent: a finished job is left alone)."""
    expire()
    job = db.session.get(ExportJob, uuid.UUID(export_id))
    if job is None or job.status == "done":
        return {"id": export_id, "status": job.status if job else "missing"}
    user = db.session.get(User, job.user_id)
    p = job.params
    try:
        if user is None or not user.active:
            raise OutOfScope(p["unit"])
        report = pipelines.pipeline(
            Principal.from_user(user),
            p["unit"],
            close_from=_day(p.get("close_from")),
            close_to=_day(p.get("close_to")),
            at=datetime.fromisoformat(p["at"]) if p.get("at") else None,
        )
    except (OutOfScope, fx.FxError, WindowError) as exc:
        job.status, job.error = "failed", str(exc) or "unit not found or out of scope"
        job.finished_at = datetime.now(UTC)
        return {"id": export_id, "status": "failed"}
    stamp = report.get("at", report["rates_as_of"])[:19].replace(":", "")
    name = f"pipeline-{p['unit']}-{stamp}"
    if p.get("format") == "csv":
        job.content, job.mimetype = exports.pipeline_csv(report), "text/csv"
        job.filename = name + ".csv"
    else:
        deals = None
        if not p.get("at"):
            deals = pipelines.open_deals(
                Principal.from_user(user),
                p["unit"],
                _day(p.get("close_from")),
                _day(p.get("close_to")),
            )
        job.content, job.mimetype = exports.pipeline_workbook(report, deals), XLSX
        job.filename = name + ".xlsx"
    job.size, job.status, job.finished_at = len(job.content), "done", datetime.now(UTC)
    return {"id": export_id, "status": "done", "size": job.size}


def expire(now: datetime | None = None) -> int:
    """Delete jobs older than ``KEEP``; return how many."""
    cutoff = (now or datetime.now(UTC)) - KEEP
    return db.session.execute(delete(ExportJob).where(ExportJob.created_at < cutoff)).rowcount


def describe(job: ExportJob, download_url: str | None) -> dict:
    return {
        "id": str(job.id),
        "kind": job.kind,
        "params": job.params,
        "status": job.status,
        "error": job.error,
        "filename": job.filename,
        "size": job.size,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "download_url": download_url if job.status == "done" else None,
    }


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None
