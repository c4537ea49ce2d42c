"""Inbox, digests and webhooks API: users read their notifications; admins manage webhooks."""

from __future__ import annotations

from flask import g
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from hq_server.api.auth import token_required
from hq_server.api.errors import ApiError
from hq_server.extensions import db
from hq_server.services import digests, notify

blp = Blueprint("inbox", __name__, url_prefix="/api/v1", description="Inbox, digests, webhooks")
WEBHOOK_ADMINS = {"admin"}
KIND = validate.Regexp(r"^[a-z][a-z0-9_.]{0,31}$")


class InboxArgs(Schema):
    unread = fields.Boolean(load_default=False, metadata={"description": "only unread ones"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class ReadSchema(Schema):
    ids = fields.List(
        fields.Integer(strict=True), required=True, validate=validate.Length(max=1000)
    )


class DigestArgs(Schema):
    unit = fields.String(required=True, metadata={"description": "org unit code, e.g. EAST"})
    kind = fields.String(validate=validate.OneOf(digests.KINDS))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=200))


class WebhookSchema(Schema):
    url = fields.Url(
        required=True,
        schemes={"http", "https"},
        require_tld=False,
        validate=validate.Length(max=500),
    )
    scope = fields.String(
        load_default="HQ",
        validate=validate.Length(min=1, max=64),
        metadata={"description": "org unit whose subtree's notifications are sent"},
    )
    kinds = fields.List(
        fields.String(validate=KIND),
        load_default=list,
        validate=validate.Length(max=50),
        metadata={"description": "notification kinds to send; empty: every kind"},
    )


@blp.get("/inbox")
@token_required("user")
@blp.arguments(InboxArgs, location="query", as_kwargs=True)
def inbox(unread, limit):
    """List your notifications, newest first (``?unread=1`` for unread ones)."""
    return notify.inbox(g.principal.user_id, unread_only=unread, limit=limit)


@blp.post("/inbox/read")
@token_required("user")
@blp.arguments(ReadSchema, as_kwargs=True)
def mark_read(ids):
    """Mark some of your notifications read."""
    marked = notify.mark_read(g.principal.user_id, ids)
    db.session.commit()
    return {"marked": marked}


@blp.get("/digests")
@token_required("user")
@blp.arguments(DigestArgs, location="query", as_kwargs=True)
def list_digests(unit, limit, kind=None):
    """List the weekly and monthly digests of the regions under a unit."""
    return {"digests": digests.list_digests(g.principal, unit, kind, limit)}


@blp.get("/digests/<int:digest_id>")
@token_required("user")
def get_digest(digest_id):
    """Return one digest with its figures (the region must be in your scope)."""
    try:
        return digests.get_digest(g.principal, digest_id)
    except digests.DigestNotFound as exc:
        raise ApiError(404, "not_found", f"no digest {digest_id} in your scope") from exc


def _admin_only() -> None:
    if g.principal.role not in WEBHOOK_ADMINS:
        raise ApiError(403, "forbidden", "only admins manage webhooks")


@blp.get("/webhooks")
@token_required("user")
def list_webhooks():
    """List the webhooks (admins only; secrets are never shown again)."""
    _admin_only()
    return {"webhooks": notify.list_webhooks()}


@blp.post("/webhooks")
@token_required("user")
@blp.arguments(WebhookSchema, as_kwargs=True)
def add_webhook(url, scope, kinds):
    """Add a webhook; the answer holds its signing secret, shown this once (admins only)."""
    _admin_only()
    try:
        hook, secret = notify.add_webhook(url, scope, kinds)
    except notify.UnknownUnit as exc:
        raise ApiError(
            422, "invalid", "the request is not valid", {"scope": ["no such unit"]}
        ) from exc
    db.session.commit()
    return {"webhook": notify.webhook_dict(hook), "secret": secret}, 201


@blp.post("/webhooks/<int:webhook_id>/disable")
@token_required("user")
def disable_webhook(webhook_id):
    """Stop sending to a webhook (admins only)."""
    _admin_only()
    try:
        hook = notify.disable_webhook(webhook_id)
    except LookupError as exc:
        raise ApiError(404, "not_found", f"no webhook {webhook_id}") from exc
    db.session.commit()
    return {"webhook": hook}
