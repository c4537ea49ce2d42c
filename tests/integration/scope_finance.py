"""Scope rules of the pipeline-changes and background-export routes, for the route matrix.

Each check takes the matrix's ``Call``; it must not import the matrix module.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tests.integration.scope_notify import UNITS, visible

if TYPE_CHECKING:
    from tests.integration.test_scope_matrix import Call

CHANGES = (
    "/api/v1/pipeline/changes?from=2026-11-01T00:00:00%2B00:00"
    "&close_from=2026-12-01&close_to=2026-12-31&unit="
)
OWNER = "finance-user"  # the user the seeded export belongs to


def _changes(c: Call):
    for unit in UNITS:
        resp = c.client.get(CHANGES + unit, headers=c.headers)
        if c.kind != "user":
            assert resp.status_code == 403
        elif visible(c.scope, unit):
            assert resp.status_code == 200, (c.role, c.scope, unit, resp.get_json())
        else:
            assert resp.status_code == 404, (c.role, c.scope, unit)


def _request_export(c: Call):
    for unit in UNITS:
        resp = c.client.post("/api/v1/exports", json={"unit": unit}, headers=c.headers)
        if c.kind != "user":
            assert resp.status_code == 403
        elif visible(c.scope, unit):
            assert resp.status_code == 202, (c.role, c.scope, unit, resp.get_json())
        else:
            assert resp.status_code == 404, (c.role, c.scope, unit)


def _seed_export(c: Call) -> uuid.UUID:
    from sqlalchemy import select

    from hq_server.extensions import db
    from hq_server.models import ExportJob, User

    with c.client.application.app_context():
        owner = db.session.scalar(select(User).where(User.username == OWNER))
        job = ExportJob(id=uuid.uuid4(), user_id=owner.id, kind="pipeline", params={"unit": "HQ"})
        db.session.add(job)
        db.session.commit()
        return job.id


def _is_owner(c: Call) -> bool:
    return c.kind == "user" and f"{c.role}-user" == OWNER


def _export_status(c: Call):
    job = _seed_export(c)
    resp = c.client.get(f"/api/v1/exports/{job}", headers=c.headers)
    if c.kind != "user":
        assert resp.status_code == 403
    else:
        assert resp.status_code == (200 if _is_owner(c) else 404), (c.role, resp.get_json())


def _export_download(c: Call):
    job = _seed_export(c)
    resp = c.client.get(f"/api/v1/exports/{job}/download", headers=c.headers)
    if c.kind != "user":
        assert resp.status_code == 403
    else:
        # The owner's export is still queued: not ready yet; anyone else: no such export.
        assert resp.status_code == (409 if _is_owner(c) else 404), (c.role, resp.get_json())


ROUTES = {
    ("/api/v1/pipeline/changes", "GET"): _changes,
    ("/api/v1/exports", "POST"): _request_export,
    ("/api/v1/exports/<uuid:export_id>", "GET"): _export_status,
    ("/api/v1/exports/<uuid:export_id>/download", "GET"): _export_download,
}
