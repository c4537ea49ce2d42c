"""Small factories: a test company, events, and push helpers."""

from __future__ import annotations

import gzip
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

# region -> branch -> reps
LAYOUT = {
    "EAST": {"SH01": ["SH01-001", "SH01-002"], "HZ01": ["HZ01-001", "HZ01-002"]},
    "WEST": {"CD01": ["CD01-001", "CD01-002"]},
}
ROLE_SCOPES = {
    "hq_manager": "HQ",
    "finance": "HQ",
    "admin": "HQ",
    "region_manager": "EAST",
    "branch_manager": "SH01",
    "staff": "SH01",
}


def org_rows() -> list[dict]:
    rows = []
    for region, branches in LAYOUT.items():
        for branch, reps in branches.items():
            for rep in reps:
                rows.append(
                    {
                        "region_code": region,
                        "region_name": region.title(),
                        "branch_code": branch,
                        "branch_name": f"Branch {branch}",
                        "rep_code": rep,
                        "rep_name": f"Rep {rep}",
                    }
                )
    return rows


@dataclass
class Company:
    """Org, agent tokens per branch and user tokens per role."""

    agent_tokens: dict[str, str] = field(default_factory=dict)
    user_tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, app) -> Company:
        from hq_server.extensions import db
        from hq_server.services.auth import add_user, issue_agent_token, issue_user_token
        from hq_server.services.org import import_org

        company = cls()
        with app.app_context():
            import_org(org_rows(), "Asia/Shanghai")
            db.session.flush()
            for branches in LAYOUT.values():
                for branch in branches:
                    company.agent_tokens[branch] = issue_agent_token(branch)
            for role, scope in ROLE_SCOPES.items():
                user = add_user(f"{role}-user", role, scope)
                company.user_tokens[role] = issue_user_token(user)
            db.session.commit()
        return company

    def agent(self, branch: str) -> dict:
        return {"Authorization": f"Bearer {self.agent_tokens[branch]}"}

    def user(self, role: str) -> dict:
        return {"Authorization": f"Bearer {self.user_tokens[role]}"}


class EventMaker:
    """Build valid events for one rep with increasing seq numbers."""

    def __init__(self, rep: str = "SH01-001", start: datetime | None = None):
        self.rep = rep
        self.seq = 0
        self.clock = start or datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def make(
        self,
        type_: str,
        data: dict | None = None,
        *,
        deal: str | None = None,
        at: datetime | None = None,
        rep: str | None = None,
        **extra,
    ) -> dict:
        self.seq += 1
        self.clock += timedelta(minutes=7)
        event = {
            "id": str(uuid.uuid4()),
            "seq": self.seq,
            "type": type_,
            "occurred_at": (at or self.clock).isoformat(),
            "rep": rep or self.rep,
            "data": data or {},
        }
        if deal:
            event["deal"] = deal
        event.update(extra)
        return event

    def deal_opened(self, deal: str | None = None, amount: float = 1000.0, **kw) -> dict:
        deal = deal or str(uuid.uuid4())
        data = {"name": f"deal {deal[:8]}", "amount": amount, "currency": "CNY"}
        return self.make("deal.opened", data, deal=deal, **kw)


def push(
    client,
    headers: dict,
    events: list,
    *,
    agent: str = "agent-1",
    gz: bool = False,
    query: str = "",
):
    body = json.dumps({"agent": {"id": agent, "version": "test"}, "events": events}).encode()
    headers = {**headers, "Content-Type": "application/json"}
    if gz:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return client.post(f"/api/v1/sync/push{query}", data=body, headers=headers)


def lock_waiters(conn) -> int:
    """Return how many backends of this database wait for a lock now."""
    conn.execute(text("SELECT pg_stat_clear_snapshot()"))  # else one reading per transaction
    return conn.execute(
        text(
            "SELECT count(DISTINCT l.pid) FROM pg_locks l JOIN pg_stat_activity a "
            "ON a.pid = l.pid WHERE NOT l.granted AND a.datname = current_database()"
        )
    ).scalar()


def wait_until(condition, seconds: float = 10) -> None:
    """Poll ``condition`` until it holds or ``seconds`` pass (the caller asserts)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def app_thread(app, errors: list, fn, *args) -> threading.Thread:
    """Return a thread running ``fn(*args)`` in an app context, then committing.

    What it raises goes into ``errors``, for the test to assert on.
    """
    from hq_server.extensions import db

    def run() -> None:
        try:
            with app.app_context():
                fn(*args)
                db.session.commit()
        except BaseException as exc:  # the test reports it
            errors.append(exc)

    return threading.Thread(target=run)
