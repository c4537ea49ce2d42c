"""Notifications: routing by scope, idempotency, the inbox, signed webhooks and e-mail."""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import socketserver
import threading
from dataclasses import replace
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import text

from hq_server.extensions import db
from hq_server.jobs.notify_tasks import NOTIFY_TASKS, deliver_webhooks, send_email
from hq_server.services.auth import add_user
from hq_server.services.notify import MAX_ATTEMPTS, notify
from tests.integration.scope_notify import ROUTES
from tests.integration.test_scope_matrix import CALLERS, Call

SUBJECT = {"en": "Deal needs approval", "zh": "商机待审批"}


@pytest.fixture(scope="module")
def api_app(services, app):
    """The app with the inbox blueprint (registered here until ``create_app`` does it)."""
    from hq_server import create_app
    from hq_server.api import inbox

    fresh = create_app(services)
    if "inbox" not in fresh.blueprints:
        fresh.extensions["flask-smorest"]["apis"][""]["ext_obj"].register_blueprint(inbox.blp)
    yield fresh
    with fresh.app_context():
        db.engine.dispose()


@pytest.fixture
def api(api_app):
    return api_app.test_client()


def _serve(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers, body))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    """A real HTTP endpoint on 127.0.0.1 that records what it receives."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received, server.status = [], 200
    server.url = f"http://127.0.0.1:{server.server_port}/hook"
    yield _serve(server)
    server.shutdown()
    server.server_close()


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP: EHLO, MAIL, RCPT, DATA and QUIT; messages are kept parsed."""

    def handle(self):
        self.wfile.write(b"220 fake ESMTP\r\n")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            if verb == b"DATA":
                self.wfile.write(b"354 end with .\r\n")
                lines = []
                while (line := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(line[1:] if line.startswith(b"..") else line)
                message = email.message_from_bytes(b"".join(lines), policy=default_policy)
                self.server.messages.append(message)
            self.wfile.write(b"250 fake\r\n" if verb == b"EHLO" else b"250 ok\r\n")


@pytest.fixture
def smtp_sink():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.daemon_threads, server.messages = True, []
    yield _serve(server)
    server.shutdown()
    server.server_close()


def _users_notified(app, key: str) -> set[str]:
    with app.app_context():
        rows = db.session.execute(
            text(
                "SELECT u.username FROM notifications n JOIN users u ON u.id = n.user_id "
                "WHERE n.key = :k"
            ),
            {"k": key},
        )
        return {r.username for r in rows}


def _notify(app, unit: str, key: str, kind: str = "approval", **kw) -> int:
    with app.app_context():
        added = notify(kind, unit, SUBJECT, {"unit": unit}, key, **kw)
        db.session.commit()
    return added


@pytest.fixture
def more_users(app, company):
    """The managers of the other region and branches, and one who has left."""
    with app.app_context():
        add_user("west-manager", "region_manager", "WEST")
        add_user("cd01-manager", "branch_manager", "CD01")
        add_user("hz01-manager", "branch_manager", "HZ01")
        add_user("sh01-former", "branch_manager", "SH01").active = False
        db.session.commit()


def test_a_branch_notification_reaches_its_branch_and_region_managers_only(app, more_users):
    assert _notify(app, "SH01", "a") == 2
    assert _users_notified(app, "a") == {"branch_manager-user", "region_manager-user"}
    _notify(app, "CD01", "b")
    assert _users_notified(app, "b") == {"west-manager", "cd01-manager"}


def test_hq_roles_get_notifications_only_when_listed(app, more_users):
    _notify(app, "HZ01", "c", roles=("region_manager", "hq_manager"))
    assert _users_notified(app, "c") == {"region_manager-user", "hq_manager-user"}
    _notify(app, "EAST", "d", roles=("admin", "finance"))
    assert _users_notified(app, "d") == {"admin-user", "finance-user"}


def test_notifying_twice_adds_one_row_per_user_and_webhook(app, company, receiver):
    with app.app_context():
        from hq_server.services.notify import add_webhook

        add_webhook(receiver.url, "EAST", [])
        db.session.commit()
    assert _notify(app, "SH01", "same") == 3
    assert _notify(app, "SH01", "same") == 0
    with app.app_context():
        counts = db.session.execute(
            text(
                "SELECT (SELECT count(*) FROM notifications), "
                "(SELECT count(*) FROM webhook_deliveries)"
            )
        ).one()
    assert tuple(counts) == (2, 1)


def test_the_inbox_lists_your_notifications_and_marks_only_yours_read(app, api, company):
    _notify(app, "SH01", "one")
    _notify(app, "SH01", "two")
    manager = company.user("branch_manager")
    body = api.get("/api/v1/inbox", headers=manager).get_json()
    assert [n["key"] for n in body["notifications"]] == ["two", "one"] and body["unread"] == 2
    assert body["notifications"][0]["subject"] == SUBJECT
    first = body["notifications"][1]["id"]
    regional = api.get("/api/v1/inbox", headers=company.user("region_manager")).get_json()
    theirs = regional["notifications"][0]["id"]
    resp = api.post("/api/v1/inbox/read", json={"ids": [first, theirs]}, headers=manager)
    assert resp.get_json() == {"marked": 1}
    unread = api.get("/api/v1/inbox?unread=1", headers=manager).get_json()
    assert [n["key"] for n in unread["notifications"]] == ["two"] and unread["unread"] == 1
    regional = api.get("/api/v1/inbox?unread=1", headers=company.user("region_manager"))
    assert regional.get_json()["unread"] == 2


def _add_hook(api, company, url: str, scope: str, kinds: list[str]) -> dict:
    resp = api.post(
        "/api/v1/webhooks",
        json={"url": url, "scope": scope, "kinds": kinds},
        headers=company.user("admin"),
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def test_a_webhook_gets_each_event_once_signed_with_its_secret(app, api, company, receiver):
    hook = _add_hook(api, company, receiver.url, "EAST", ["approval"])
    _add_hook(api, company, receiver.url, "WEST", [])  # another subtree
    _add_hook(api, company, receiver.url, "HQ", ["digest"])  # another kind
    listed = api.get("/api/v1/webhooks", headers=company.user("admin")).get_json()["webhooks"]
    assert len(listed) == 3 and not any("secret" in h for h in listed)
    _notify(app, "SH01", "approval:42")
    with app.app_context():
        assert deliver_webhooks() == {"delivered": 1, "retry": 0, "failed": 0}
        assert deliver_webhooks() == {"delivered": 0, "retry": 0, "failed": 0}
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    expected = hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-HQ-Signature"] == f"sha256={expected}"
    assert headers["X-HQ-Event"] == "approval:42" and headers["X-HQ-Delivery"].isdigit()
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert payload["event"] == "approval:42" and payload["unit"] == "SH01"
    assert payload["kind"] == "approval" and payload["subject"] == SUBJECT


def _travel(app) -> None:
    """Move every delivery's creation back until its next attempt is due."""
    with app.app_context():
        db.session.execute(
            text(
                "UPDATE webhook_deliveries SET created_at = now() - interval '1 minute' "
                "* power(2, attempts) - interval '1 second'"
            )
        )
        db.session.commit()


def test_a_failing_endpoint_is_retried_with_backoff_then_given_up(app, api, company, receiver):
    receiver.status = 500
    _add_hook(api, company, receiver.url, "HQ", [])
    _notify(app, "CD01", "flaky")
    with app.app_context():
        assert deliver_webhooks()["retry"] == 1
        assert deliver_webhooks()["retry"] == 0  # not due yet: the backoff holds it back
    assert len(receiver.received) == 1
    outcomes = []
    for _ in range(MAX_ATTEMPTS):
        _travel(app)
        with app.app_context():
            outcomes.append(deliver_webhooks())
    assert [o["failed"] for o in outcomes] == [0] * (MAX_ATTEMPTS - 2) + [1, 0]
    assert len(receiver.received) == MAX_ATTEMPTS
    with app.app_context():
        row = db.session.execute(
            text("SELECT status, attempts, last_error FROM webhook_deliveries")
        ).one()
    assert row.status == "failed" and row.attempts == MAX_ATTEMPTS
    assert row.last_error.startswith("HTTP 500")


def test_a_disabled_webhook_gets_nothing_more(app, api, company, receiver):
    hook = _add_hook(api, company, receiver.url, "HQ", [])["webhook"]
    _notify(app, "SH01", "before")
    resp = api.post(f"/api/v1/webhooks/{hook['id']}/disable", headers=company.user("admin"))
    assert resp.status_code == 200 and resp.get_json()["webhook"]["active"] is False
    _notify(app, "SH01", "after")
    with app.app_context():
        assert deliver_webhooks()["delivered"] == 0
        assert db.session.scalar(text("SELECT count(*) FROM webhook_deliveries")) == 1
    assert receiver.received == []


def test_a_webhook_needs_a_known_scope_and_an_http_url(api, company):
    admin = company.user("admin")
    bad_scope = api.post(
        "/api/v1/webhooks", json={"url": "https://x.test/h", "scope": "NOPE"}, headers=admin
    )
    assert bad_scope.status_code == 422 and "scope" in bad_scope.get_json()["errors"]
    bad_url = api.post("/api/v1/webhooks", json={"url": "ftp://x.test/h"}, headers=admin)
    assert bad_url.status_code == 422 and "url" in bad_url.get_json()["errors"]


def test_delivery_runs_through_the_outbox_relay_and_a_real_worker(
    app, company, receiver, queue, monkeypatch
):
    from hq_server.jobs.outbox import add_job, relay
    from hq_server.jobs.tasks import TASKS
    from hq_server.services.notify import add_webhook

    for name, func in NOTIFY_TASKS.items():
        if name not in TASKS:
            monkeypatch.setitem(TASKS, name, func)
    _notify(app, "SH01", "queued")  # no webhook yet: nothing to deliver
    with app.app_context():
        add_webhook(receiver.url, "HQ", [])
        db.session.commit()
    _notify(app, "HZ01", "queued-too")
    with app.app_context():
        add_job("deliver_webhooks:2026-11-23T10:00", "deliver_webhooks", again=False)
        db.session.commit()
        assert relay(queue) == 1
        SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer).work(
            burst=True
        )
        db.session.rollback()
        done = db.session.scalar(text("SELECT done_at IS NOT NULL FROM job_outbox"))
    assert done and len(queue.failed_job_registry) == 0
    assert [h["X-HQ-Event"] for h, _ in receiver.received] == ["queued-too"]


def test_notifications_are_emailed_once_to_users_whose_username_is_an_address(
    app, company, smtp_sink, monkeypatch
):
    with app.app_context():
        add_user("boss@example.com", "region_manager", "EAST")
        db.session.commit()
    _notify(app, "SH01", "mail-me")
    settings = app.config["SETTINGS"]
    url = f"smtp://127.0.0.1:{smtp_sink.server_address[1]}"
    monkeypatch.setitem(app.config, "SETTINGS", replace(settings, smtp_url=url))
    with app.app_context():
        assert send_email() == {"sent": 1}
        assert send_email() == {"sent": 0}
        emailed = db.session.execute(
            text(
                "SELECT u.username FROM notifications n JOIN users u ON u.id = n.user_id "
                "WHERE n.emailed_at IS NOT NULL"
            )
        ).all()
    assert [r.username for r in emailed] == ["boss@example.com"]
    (message,) = smtp_sink.messages
    assert message["To"] == "boss@example.com" and message["From"] == settings.mail_from
    assert message["Subject"] == f"{SUBJECT['en']} / {SUBJECT['zh']}"
    assert message["Message-ID"].startswith("<notification-")
    assert "/api/v1/inbox" in message.get_content()


def test_without_an_smtp_url_nothing_is_emailed(app, company, monkeypatch):
    with app.app_context():
        add_user("boss@example.com", "region_manager", "EAST")
        db.session.commit()
    _notify(app, "SH01", "no-mail")
    monkeypatch.setitem(app.config, "SETTINGS", replace(app.config["SETTINGS"], smtp_url=None))
    with app.app_context():
        assert send_email() == {"sent": 0}
        assert (
            db.session.scalar(
                text("SELECT count(*) FROM notifications WHERE emailed_at IS NOT NULL")
            )
            == 0
        )


def test_every_inbox_route_has_a_scope_rule(api_app):
    live = {
        (rule.rule, method)
        for rule in api_app.url_map.iter_rules()
        if rule.endpoint.startswith("inbox.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert live == set(ROUTES)


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("kind,role,scope", CALLERS)
def test_inbox_routes_follow_their_scope_rules(api, company, route, kind, role, scope):
    headers = company.user(role) if kind == "user" else company.agent(scope)
    ROUTES[route](Call(api, headers, kind, role, scope, {}))
