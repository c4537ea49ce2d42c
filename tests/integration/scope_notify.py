"""Scope rules of the inbox, digest and webhook routes, for the route matrix.

Each check takes the matrix's ``Call`` (client, headers, kind, role, scope,
seeds) and seeds what it needs through the app behind the client, so the
matrix's own seeds stay as they are. This module must not import the matrix
module (the matrix imports this one).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy import select

if TYPE_CHECKING:
    from tests.integration.test_scope_matrix import Call

UNITS = ("HQ", "EAST", "WEST", "SH01", "HZ01", "CD01")
SUBTREES = {
    "HQ": set(UNITS),
    "EAST": {"EAST", "SH01", "HZ01"},
    "WEST": {"WEST", "CD01"},
}
REGIONS = ("EAST", "WEST")
ADMINS = {"admin"}
# Who a notification about SH01 reaches (its branch manager and its region's manager).
SH01_READERS = {"branch_manager", "region_manager"}


def visible(scope: str, unit: str) -> bool:
    """Tell whether a caller scoped to ``scope`` may see ``unit``."""
    return unit in SUBTREES.get(scope, {scope})


def _seed_notification(c: Call) -> list[int]:
    from hq_server.extensions import db
    from hq_server.models import Notification
    from hq_server.services.notify import notify

    with c.client.application.app_context():
        notify("test", "SH01", {"en": "x", "zh": "x"}, {}, "matrix:SH01")
        db.session.commit()
        return list(db.session.scalars(select(Notification.id).order_by(Notification.id)))


def _seed_digests(c: Call) -> dict[str, int]:
    from hq_server.extensions import db
    from hq_server.models import Digest

    out = {}
    with c.client.application.app_context():
        for region in REGIONS:
            key = f"weekly:{region}:2026-11-02"
            digest = db.session.scalar(select(Digest).where(Digest.key == key))
            if digest is None:
                digest = Digest(
                    key=key,
                    region_code=region,
                    kind="weekly",
                    period_start=date(2026, 11, 2),
                    period_end=date(2026, 11, 8),
                    content={"region": {"code": region}},
                )
                db.session.add(digest)
                db.session.flush()
            out[region] = digest.id
        db.session.commit()
    return out


def _inbox(c: Call):
    _seed_notification(c)
    resp = c.client.get("/api/v1/inbox", headers=c.headers)
    if c.kind != "user":
        assert resp.status_code == 403
        return
    assert resp.status_code == 200, resp.get_json()
    seen = len(resp.get_json()["notifications"])
    assert seen == (1 if c.role in SH01_READERS else 0), (c.role, seen)


def _mark_read(c: Call):
    ids = _seed_notification(c)
    resp = c.client.post("/api/v1/inbox/read", json={"ids": ids}, headers=c.headers)
    if c.kind != "user":
        assert resp.status_code == 403
        return
    # Only your own notifications change, whatever ids you send.
    assert resp.status_code == 200
    assert resp.get_json()["marked"] == (1 if c.role in SH01_READERS else 0), c.role


def _list_digests(c: Call):
    _seed_digests(c)
    for unit in UNITS:
        resp = c.client.get(f"/api/v1/digests?unit={unit}", headers=c.headers)
        if c.kind != "user":
            assert resp.status_code == 403
        elif visible(c.scope, unit):
            assert resp.status_code == 200, (c.role, unit, resp.get_json())
            regions = {d["region"] for d in resp.get_json()["digests"]}
            assert regions == {r for r in REGIONS if visible(unit, r)}, (c.role, unit)
        else:
            assert resp.status_code == 404, (c.role, c.scope, unit)
            assert resp.get_json()["code"] == "not_found"


def _get_digest(c: Call):
    for region, digest_id in _seed_digests(c).items():
        resp = c.client.get(f"/api/v1/digests/{digest_id}", headers=c.headers)
        if c.kind != "user":
            assert resp.status_code == 403
        elif visible(c.scope, region):
            assert resp.status_code == 200 and resp.get_json()["region"] == region
        else:
            assert resp.status_code == 404 and resp.get_json()["code"] == "not_found"


def _admin_only(c: Call) -> bool:
    return c.kind == "user" and c.role in ADMINS


def _list_webhooks(c: Call):
    resp = c.client.get("/api/v1/webhooks", headers=c.headers)
    assert resp.status_code == (200 if _admin_only(c) else 403), (c.role, resp.get_json())


def _add_webhook(c: Call):
    hook = {"url": "http://127.0.0.1:9/hook", "scope": "EAST"}
    resp = c.client.post("/api/v1/webhooks", json=hook, headers=c.headers)
    assert resp.status_code == (201 if _admin_only(c) else 403), (c.role, resp.get_json())
    if _admin_only(c):
        assert resp.get_json()["secret"]


def _disable_webhook(c: Call):
    from hq_server.extensions import db
    from hq_server.services.notify import add_webhook

    with c.client.application.app_context():
        hook, _ = add_webhook("http://127.0.0.1:9/hook", "HQ", [])
        db.session.commit()
        hook_id = hook.id
    resp = c.client.post(f"/api/v1/webhooks/{hook_id}/disable", headers=c.headers)
    if _admin_only(c):
        assert resp.status_code == 200 and resp.get_json()["webhook"]["active"] is False
    else:
        assert resp.status_code == 403, (c.role, resp.get_json())


# Route -> the check of every caller against it (merged into the matrix's ROUTES).
ROUTES = {
    ("/api/v1/inbox", "GET"): _inbox,
    ("/api/v1/inbox/read", "POST"): _mark_read,
    ("/api/v1/digests", "GET"): _list_digests,
    ("/api/v1/digests/<int:digest_id>", "GET"): _get_digest,
    ("/api/v1/webhooks", "GET"): _list_webhooks,
    ("/api/v1/webhooks", "POST"): _add_webhook,
    ("/api/v1/webhooks/<int:webhook_id>/disable", "POST"): _disable_webhook,
}
