"""Notification jobs: signed webhook deliveries, e-mail, and the periodic digests.

Each delivery and each e-mail is sent while its row is locked and is marked
done in its own commit, so concurrent runs never send one twice and a crash
re-sends at most the one in flight (receivers dedupe by ``X-HQ-Event``, mail
clients by ``Message-ID``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from hq_server.jobs.context import app_context

log = logging.getLogger(__name__)
BATCH = 100  # deliveries or e-mails per run; the next run takes the rest
TIMEOUT = 10  # seconds per webhook POST and per SMTP operation
FIRST_CALENDAR = ZoneInfo("Etc/GMT-14")  # UTC+14: where each day starts first


def _done(outbox_key: str | None) -> None:
    from hq_server.extensions import db
    from hq_server.jobs.outbox import mark_done

    if outbox_key:
        mark_done(outbox_key)
    db.session.commit()


def deliver_webhooks(outbox_key: str | None = None) -> dict:
    """POST due webhook deliveries, signed, each recorded in its own commit."""
    from hq_server.extensions import db
    from hq_server.services import notify

    counts = {"delivered": 0, "retry": 0, "failed": 0}
    with app_context():
        tried: list[int] = []
        while len(tried) < BATCH:
            claimed = notify.claim_delivery(tried)
            if claimed is None:
                break
            delivery, hook = claimed
            tried.append(delivery.id)
            body, headers = notify.signed_request(delivery, hook)
            counts[notify.record_attempt(delivery, _post(hook.url, body, headers))] += 1
            db.session.commit()
        _done(outbox_key)
    if counts["failed"]:
        log.warning("webhook deliveries given up: %d", counts["failed"])
    return counts


def _post(url: str, body: bytes, headers: dict) -> str | None:
    """POST ``body``; return None on a 2xx answer, else what went wrong."""
    import requests

    try:
        resp = requests.post(
            url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False
        )
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"
    if 200 <= resp.status_code < 300:
        return None
    return f"HTTP {resp.status_code}: {resp.text[:500]}"


def send_email(outbox_key: str | None = None) -> dict:
    """E-mail new notifications to users whose username is an address (needs SMTP_URL)."""
    sent = 0
    with app_context() as app:
        settings = app.config["SETTINGS"]
        if settings.smtp_url:
            sent = _send_pending(settings)
        _done(outbox_key)
    return {"sent": sent}


def _send_pending(settings) -> int:
    from hq_server.extensions import db
    from hq_server.services import notify

    tried: list[int] = []
    sent, smtp = 0, None
    try:
        while len(tried) < BATCH:
            claimed = notify.claim_email(tried)
            if claimed is None:
                break
            notification, address = claimed
            tried.append(notification.id)
            smtp = smtp or _connect(settings.smtp_url)
            try:
                smtp.send_message(_message(notification, address, settings))
            except smtplib.SMTPRecipientsRefused as exc:
                log.warning("the mail server refused %s: %s", address, exc.recipients)
                db.session.rollback()
                continue
            notify.mark_emailed(notification)
            db.session.commit()
            sent += 1
    finally:
        db.session.rollback()
        if smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            smtp.close()
    return sent


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _connect(url: str) -> smtplib.SMTP:
    """Open an SMTP session: ``smtps://`` is TLS, ``smtp://`` must offer STARTTLS.

    A relay on the loopback interface may speak plain SMTP (mail never leaves the host).
    """
    parts = urlsplit(url)
    host, context = parts.hostname or "localhost", ssl.create_default_context()
    if parts.scheme == "smtps":
        smtp = smtplib.SMTP_SSL(host, parts.port or 465, timeout=TIMEOUT, context=context)
    elif parts.scheme == "smtp":
        smtp = smtplib.SMTP(host, parts.port or 587, timeout=TIMEOUT)
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
        elif not _loopback(host):
            smtp.close()
            raise RuntimeError(f"{host} offers no STARTTLS; refusing to send mail in clear text")
    else:
        raise ValueError("SMTP_URL must start with smtp:// or smtps://")
    if parts.username:
        smtp.login(unquote(parts.username), unquote(parts.password or ""))
    return smtp


def _message(notification, address: str, settings) -> EmailMessage:
    subject = notification.subject
    domain = settings.mail_from.rpartition("@")[2].strip("> ") or "localhost"
    msg = EmailMessage()
    msg["Subject"] = " / ".join(filter(None, (subject.get("en"), subject.get("zh"))))
    msg["From"] = settings.mail_from
    msg["To"] = address
    msg["Date"] = formatdate(usegmt=True)
    # The same notification always has the same id, so a re-sent copy is recognisable.
    msg["Message-ID"] = f"<notification-{notification.id}@{domain}>"
    lines = [subject.get("en", ""), subject.get("zh", ""), ""]
    for name, value in sorted(notification.body.items()):
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"{name}: {shown}")
    if "digest_id" in notification.body:
        lines += ["", f"{settings.public_url}/api/v1/digests/{notification.body['digest_id']}"]
    lines += ["", f"{settings.public_url}/api/v1/inbox"]
    msg.set_content("\n".join(lines))
    return msg


def build_digests(outbox_key: str | None = None, as_of: str | None = None) -> dict:
    """Build last week's and last month's digest of every region whose period is over.

    ``as_of`` (an ISO date-time) builds them as of another moment, for backfills.
    """
    from hq_server.services.digests import KINDS, last_finished
    from hq_server.services.digests import build_digests as build

    now = datetime.fromisoformat(as_of) if as_of else datetime.now(UTC)
    # Judged from the first calendar to start a day; regions still inside the
    # period are skipped by the service and built by a later run.
    today = now.astimezone(FIRST_CALENDAR).date()
    with app_context():
        built = {kind: build(kind, last_finished(kind, today), now) for kind in KINDS}
        _done(outbox_key)
    return built


# The job functions of this module, by the name the job outbox knows them by.
NOTIFY_TASKS = {
    "deliver_webhooks": deliver_webhooks,
    "send_email": send_email,
    "build_digests": build_digests,
}
