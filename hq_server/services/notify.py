"""Route notifications to users' inboxes and to webhooks; no network IO happens here.

``notify`` only writes rows (idempotent by key), so it can run inside any
other use case's transaction; the delivery jobs send them after commit.
A webhook delivery is attempted at most once per job run and is marked
delivered only after a 2xx answer, in its own commit: a crash in between
re-sends at most that one delivery, so receivers dedupe by ``X-HQ-Event``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB

from hq_server.extensions import db
from hq_server.models import Notification, OrgUnit, User, Webhook, WebhookDelivery

MAX_ATTEMPTS = 8
EMAIL_MAX_AGE = timedelta(days=2)  # a mail server configured late does not flood old news

# "The unit is inside the subtree of some row of the scope code": org units are SCD rows.
_COVERS = (
    "EXISTS (SELECT 1 FROM org_units sc WHERE sc.code = {code} AND starts_with(:path, sc.path))"
)

_TO_USERS = text(
    "INSERT INTO notifications (key, user_id, kind, subject, body, created_at) "
    "SELECT :key, u.id, :kind, :subject, :body, :now FROM users u "
    "JOIN org_units s ON s.id = u.scope_unit_id "
    f"WHERE u.active AND u.role = ANY(:roles) AND {_COVERS.format(code='s.code')} "
    "ON CONFLICT (key, user_id) DO NOTHING"
).bindparams(bindparam("subject", type_=JSONB), bindparam("body", type_=JSONB))

_TO_WEBHOOKS = text(
    "INSERT INTO webhook_deliveries (webhook_id, event_key, payload, status, attempts, "
    "created_at) SELECT w.id, :key, :payload, 'pending', 0, :now FROM webhooks w "
    "WHERE w.active AND (jsonb_array_length(coalesce(w.kinds, '[]')) = 0 OR w.kinds ? :kind) "
    f"AND {_COVERS.format(code='w.scope_code')} "
    "ON CONFLICT (webhook_id, event_key) DO NOTHING"
).bindparams(bindparam("payload", type_=JSONB))


class UnknownUnit(ValueError):
    """No org unit has this code."""


def _unit_path(code: str) -> str:
    path = db.session.scalar(
        select(OrgUnit.path)
        .where(OrgUnit.code == code)
        .order_by(OrgUnit.active_to.is_not(None), OrgUnit.active_from.desc(), OrgUnit.id.desc())
        .limit(1)
    )
    if path is None:
        raise UnknownUnit(code)
    return path


def notify(
    kind: str,
    unit_code: str,
    subject: dict,
    body: dict,
    key: str,
    roles: tuple[str, ...] = ("branch_manager", "region_manager"),
) -> int:
    """Notify every active user of ``roles`` who oversees ``unit_code``, and its webhooks.

    The unit's current row decides who oversees it. Rows are unique by
    ``key`` (per user, per webhook), so calling twice adds nothing. Returns
    how many rows were added. The caller commits.
    """
    now = datetime.now(UTC)
    params = {"key": key, "kind": kind, "path": _unit_path(unit_code), "now": now}
    users = db.session.execute(
        _TO_USERS, {**params, "subject": subject, "body": body, "roles": list(roles)}
    )
    payload = {
        "event": key,
        "kind": kind,
        "unit": unit_code,
        "subject": subject,
        "body": body,
        "created_at": now.isoformat(),
    }
    hooks = db.session.execute(_TO_WEBHOOKS, {**params, "payload": payload})
    return users.rowcount + hooks.rowcount


def _notification_dict(n: Notification) -> dict:
    return {
        "id": n.id,
        "key": n.key,
        "kind": n.kind,
        "subject": n.subject,
        "body": n.body,
        "created_at": n.created_at.isoformat(),
        "read_at": n.read_at.isoformat() if n.read_at else None,
    }


def inbox(user_id: int, unread_only: bool = False, limit: int = 50) -> dict:
    """Return a user's newest notifications and how many are unread."""
    query = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    rows = db.session.scalars(query.order_by(Notification.id.desc()).limit(limit))
    unread = db.session.scalar(
        select(db.func.count())
        .select_from(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
    )
    return {"notifications": [_notification_dict(n) for n in rows], "unread": unread}


def mark_read(user_id: int, ids: list[int]) -> int:
    """Mark the user's own unread notifications among ``ids`` read; return how many."""
    result = db.session.execute(
        update(Notification)
        .where(
            Notification.user_id == user_id,
            Notification.id.in_(ids),
            Notification.read_at.is_(None),
        )
        .values(read_at=datetime.now(UTC))
    )
    return result.rowcount


def webhook_dict(hook: Webhook) -> dict:
    """Return a webhook as the API shows it (without its secret)."""
    return {
        "id": hook.id,
        "url": hook.url,
        "scope": hook.scope_code,
        "kinds": hook.kinds,
        "active": hook.active,
        "created_at": hook.created_at.isoformat() if hook.created_at else None,
    }


def add_webhook(url: str, scope_code: str, kinds: list[str]) -> tuple[Webhook, str]:
    """Register an endpoint for a unit's subtree; return it and its secret (shown once)."""
    _unit_path(scope_code)
    secret = secrets.token_urlsafe(32)
    hook = Webhook(url=url, secret=secret, scope_code=scope_code, kinds=sorted(set(kinds)))
    db.session.add(hook)
    db.session.flush()
    db.session.refresh(hook)
    return hook, secret


def list_webhooks() -> list[dict]:
    """Return every webhook (never its secret)."""
    return [webhook_dict(h) for h in db.session.scalars(select(Webhook).order_by(Webhook.id))]


def disable_webhook(webhook_id: int) -> dict:
    """Stop sending to a webhook; its pending deliveries stay unsent. Raise LookupError."""
    hook = db.session.get(Webhook, webhook_id)
    if hook is None:
        raise LookupError(webhook_id)
    hook.active = False
    return webhook_dict(hook)


def claim_delivery(
    tried: list[int], now: datetime | None = None
) -> tuple[WebhookDelivery, Webhook] | None:
    """Lock the next due delivery not in ``tried``; None when there is none.

    Due: pending, webhook active, and never tried or ``created_at + 2**attempts``
    minutes past (backoff measured from creation: there is no last-attempt time).
    Locked rows are skipped, so concurrent jobs never send the same delivery.
    """
    due = text(
        "(webhook_deliveries.attempts = 0 OR webhook_deliveries.created_at "
        "+ interval '1 minute' * power(2, webhook_deliveries.attempts) <= :now)"
    ).bindparams(now=now or datetime.now(UTC))
    row = db.session.execute(
        select(WebhookDelivery, Webhook)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(
            WebhookDelivery.status == "pending",
            Webhook.active,
            due,
            WebhookDelivery.id.not_in(tried or [0]),
        )
        .order_by(WebhookDelivery.id)
        .limit(1)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def signed_request(delivery: WebhookDelivery, hook: Webhook) -> tuple[bytes, dict]:
    """Return the body and headers of a delivery, signed with the webhook's secret."""
    body = json.dumps(
        delivery.payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True
    ).encode()
    signature = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "User-Agent": "hq-server-webhooks/1",
        "X-HQ-Event": delivery.event_key,
        "X-HQ-Delivery": str(delivery.id),
        "X-HQ-Signature": f"sha256={signature}",
    }


def record_attempt(delivery: WebhookDelivery, error: str | None) -> str:
    """Record one attempt's outcome; return "delivered", "retry" or "failed"."""
    delivery.attempts += 1
    if error is None:
        delivery.status, delivery.delivered_at = "delivered", datetime.now(UTC)
        delivery.last_error = None
    else:
        delivery.last_error = error[:2000]
        if delivery.attempts >= MAX_ATTEMPTS:
            delivery.status = "failed"
    return "retry" if delivery.status == "pending" else delivery.status


def claim_email(tried: list[int]) -> tuple[Notification, str] | None:
    """Lock the next recent notification still to be e-mailed, with its address.

    A user's e-mail address, else a username that is an address; users with
    neither get no mail. Read notifications are not mailed (the user has seen them).
    """
    address = func.coalesce(User.email, User.username)
    row = db.session.execute(
        select(Notification, address)
        .join(User, User.id == Notification.user_id)
        .where(
            Notification.emailed_at.is_(None),
            Notification.read_at.is_(None),
            Notification.created_at > datetime.now(UTC) - EMAIL_MAX_AGE,
            Notification.id.not_in(tried or [0]),
            User.active,
            address.contains("@"),
        )
        .order_by(Notification.id)
        .limit(1)
        .with_for_update(of=Notification, skip_locked=True)
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def mark_emailed(notification: Notification) -> None:
    """Record that a notification was handed to the mail server."""
    notification.emailed_at = datetime.now(UTC)
