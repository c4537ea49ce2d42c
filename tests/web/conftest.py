"""Console fixtures: the test company with a password per role, and a signed-in client."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest

from tests.conftest import reset_tables
from tests.factories import ROLE_SCOPES, Company, EventMaker, push

PASSWORD = "correct horse 1"


@pytest.fixture(autouse=True)
def clean_tables(app):
    """Start every test on empty tables."""
    reset_tables(app)


@pytest.fixture
def company(app) -> Company:
    """The small company (EAST: SH01, HZ01; WEST: CD01) with a web password per role."""
    from hq_server.extensions import db
    from hq_server.web import accounts

    made = Company.create(app)
    with app.app_context():
        for role in ROLE_SCOPES:
            accounts.set_password(accounts.find_user(f"{role}-user"), PASSWORD)
        db.session.commit()
    return made


def csrf_token(client, path: str = "/console/login") -> str:
    """Return the CSRF token of a console form, as the browser would read it."""
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def login(client, role: str, password: str = PASSWORD):
    """Sign in as the test user of ``role``; return the answer to the form."""
    return client.post(
        "/console/login",
        data={
            "csrf_token": csrf_token(client),
            "username": f"{role}-user",
            "password": password,
        },
    )


def post_form(client, path: str, data: dict, page: str = "/console/inbox"):
    """POST a console form with the session's CSRF token."""
    return client.post(path, data={"csrf_token": csrf_token(client, page), **data})


@pytest.fixture
def signed_in(app, company):
    """Return ``as_role(role)``: a test client signed in as that role's user."""

    def as_role(role: str):
        client = app.test_client()
        response = login(client, role)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return as_role


def publish_default_playbook(app) -> None:
    """Publish the shipped default playbook, in force since yesterday (rules never apply
    to entries made before their publication)."""
    from hq_server.extensions import db
    from hq_server.services import playbooks

    with app.app_context():
        source = resources.files("config").joinpath("playbook.default.yaml").read_text()
        row = playbooks.publish(source, "test")
        row.published_at = datetime.now(UTC) - timedelta(days=1)
        db.session.commit()


def recent(hours: float = 3) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


@pytest.fixture
def activity(app, company):
    """Today's entries in SH01 and CD01: deals, visits, a quote breaking a rule, a big deal."""
    publish_default_playbook(app)
    client = app.test_client()
    sh = EventMaker("SH01-001", start=recent(5))
    deal = str(uuid.uuid4())
    big = str(uuid.uuid4())
    events = [
        sh.deal_opened(deal, amount=50000.0),
        sh.make("visit.logged", {"decision_maker_met": False}, deal=deal),
        sh.make("visit.logged", {"decision_maker_met": True}, deal=deal),
        sh.make("call.logged", {"connected": True}, deal=deal),
        sh.make(
            "deal.opened",
            {"name": "Big rollout", "amount": 2000000, "currency": "CNY"},
            deal=big,
        ),
    ]
    answer = push(client, company.agent("SH01"), events)
    assert answer.status_code == 200, answer.get_json()
    other = EventMaker("SH01-002", start=recent(4))
    lone = str(uuid.uuid4())
    rule_breaking = [
        other.deal_opened(lone, amount=8000.0),
        other.make("quote.issued", {"amount": 8000, "currency": "CNY"}, deal=lone),
    ]
    assert push(client, company.agent("SH01"), rule_breaking).status_code == 200
    west = EventMaker("CD01-001", start=recent(5))
    assert push(client, company.agent("CD01"), [west.deal_opened(amount=700.0)]).status_code == 200
    return {"deal": deal, "big": big, "lone": lone}


def add_flag(app, code: str, reason_en: str = "win rate 12% on 58 deals") -> int:
    """Store an open lagging flag on unit ``code`` for last week; return its id."""
    from hq_server.extensions import db
    from hq_server.models import LaggingFlag
    from hq_server.services.org import active_unit

    today = datetime.now(UTC).date()
    with app.app_context():
        unit = active_unit(code)
        flag = LaggingFlag(
            key=f"peers:win_rate:{code}:{today}",
            unit_code=code,
            unit_kind=unit.kind,
            parent_code=unit.parent.code if unit.parent else None,
            unit_path=unit.path,
            metric="win_rate",
            check="peers",
            period_kind="week",
            period_start=today - timedelta(days=today.weekday() + 7),
            period_end=today - timedelta(days=today.weekday() + 1),
            value=0.12,
            n=58,
            peer_value=0.27,
            limit=0.16,
            z=-2.4,
            severity="warn",
            reason={"en": reason_en, "zh": "赢单率 12%,共 58 个商机"},
            details={},
            status="open",
        )
        db.session.add(flag)
        db.session.commit()
        return flag.id
