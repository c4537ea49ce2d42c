"""The web console in a real browser: Debian's Chromium driven by Playwright.

The HQ app and a branch agent's staff page are served from threads of this
process against the test database; the browser signs in as each role, clicks
through the pages, acts on flags and approvals, downloads the workbook, and
watches an entry made on the agent's page arrive on the branch page without a
reload. Any console error or uncaught page error fails the test. Screenshots
land in ``test-artifacts/screenshots``.
"""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import select
from werkzeug.serving import make_server

from tests.factories import ROLE_SCOPES, EventMaker, push

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "correct horse 1"


class Served:
    """A WSGI app served by werkzeug from a thread on a free local port."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.thread.join(10)


@pytest.fixture
def people(app, company):
    """The test company's users, each with a web password."""
    from hq_server.extensions import db
    from hq_server.web import accounts

    with app.app_context():
        for role in ROLE_SCOPES:
            accounts.set_password(accounts.find_user(f"{role}-user"), PASSWORD)
        db.session.commit()
    return company


@pytest.fixture
def hq_url(app, people):
    with Served(app) as served:
        yield served.url


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's Chromium is missing: apt-get install -y chromium (.ci/run does it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        yield launched
        launched.close()


@pytest.fixture
def open_page(browser):
    """Return ``open_page(locale)``: a fresh page whose console errors fail the test."""
    contexts, errors = [], []

    def watch(page: Page, favicon_missing: bool) -> None:
        # A page answered 403/404 on purpose is logged by Chromium as a failed load; the test
        # checks that status itself. Any other failed load or script error is a failure.
        answered = {}

        def response(r) -> None:
            if r.request.resource_type == "document" and r.frame == page.main_frame:
                answered[r.url] = r.status

        def console(message) -> None:
            if message.type != "error":
                return
            url = message.location.get("url", "")
            if message.text.startswith("Failed to load resource") and answered.get(url, 0) >= 400:
                return
            if favicon_missing and url.endswith("/favicon.ico"):
                return
            errors.append(f"{message.text} ({url})")

        page.on("response", response)
        page.on("console", console)
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))

    def opener(locale: str = "en-US", *, favicon_missing: bool = False) -> Page:
        context = browser.new_context(
            locale=locale, viewport={"width": 1366, "height": 900}, accept_downloads=True
        )
        contexts.append(context)
        page = context.new_page()
        watch(page, favicon_missing)
        return page

    yield opener
    for context in contexts:
        context.close()
    assert errors == [], errors


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, hq_url: str, role: str) -> None:
    page.goto(f"{hq_url}/console/login")
    page.get_by_label("User name").fill(f"{role}-user")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def seed_activity(app, company) -> dict:
    """Publish the default playbook (in force since yesterday) and push today's entries."""
    from importlib import resources

    from hq_server.extensions import db
    from hq_server.services import playbooks

    with app.app_context():
        source = resources.files("config").joinpath("playbook.default.yaml").read_text()
        playbooks.publish(source, "test").published_at = datetime.now(UTC) - timedelta(days=1)
        db.session.commit()
    client = app.test_client()
    start = datetime.now(UTC) - timedelta(hours=4)
    sh, deal, big = EventMaker("SH01-001", start=start), str(uuid.uuid4()), str(uuid.uuid4())
    events = [
        sh.deal_opened(deal, amount=50000.0),
        sh.make("visit.logged", {"decision_maker_met": True, "outcome": "met the CIO"}, deal=deal),
        sh.make("quote.issued", {"amount": 48000, "currency": "CNY"}, deal=deal),
        sh.make(
            "deal.opened", {"name": "Big rollout", "amount": 2000000, "currency": "CNY"}, deal=big
        ),
    ]
    assert push(client, company.agent("SH01"), events).status_code == 200
    west = EventMaker("CD01-001", start=start)
    assert push(client, company.agent("CD01"), [west.deal_opened(amount=900.0)]).status_code == 200
    return {"deal": deal, "big": big}


def pipeline_of(app, unit: str) -> dict:
    """Return the unit's live pipeline as the service computes it (HQ's view)."""
    from hq_server.services import pipeline
    from hq_server.services.scope import Principal

    with app.app_context():
        return pipeline.pipeline(Principal("user", "admin", "HQ"), unit)


def add_flag(app, code: str) -> int:
    from hq_server.extensions import db
    from hq_server.models import LaggingFlag
    from hq_server.services.org import active_unit

    today = datetime.now(UTC).date()
    monday = today - timedelta(days=today.weekday() + 7)
    with app.app_context():
        unit = active_unit(code)
        flag = LaggingFlag(
            key=f"peers:win_rate:{code}:{monday}",
            unit_code=code,
            unit_kind="branch",
            parent_code=unit.parent.code,
            unit_path=unit.path,
            metric="win_rate",
            check="peers",
            period_kind="week",
            period_start=monday,
            period_end=monday + timedelta(days=6),
            value=0.12,
            n=58,
            peer_value=0.27,
            limit=0.16,
            z=-2.4,
            severity="warn",
            status="open",
            details={},
            reason={
                "en": "win rate 12% on 58 closed deals; region 27%; limit 16%",
                "zh": "赢单率 12%(58 个已结束商机);大区 27%;下限 16%",
            },
        )
        db.session.add(flag)
        db.session.commit()
        return flag.id


def test_the_login_page_is_keyboard_first(hq_url, open_page):
    page = open_page()
    page.goto(f"{hq_url}/console/login")

    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("User name")).to_be_focused()
    page.keyboard.type("hq_manager-user")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name=re.compile("HQ overview"))).to_be_visible()


def test_a_wrong_password_is_refused_in_the_page_language(hq_url, open_page):
    page = open_page("zh-CN")
    page.goto(f"{hq_url}/console/login")
    shot(page, "login-zh")

    page.get_by_label("用户名").fill("finance-user")
    page.get_by_label("密码").fill("not the password")
    page.get_by_role("button", name="登录").click()

    expect(page.get_by_role("alert")).to_have_text("用户名或密码不正确。")


ROLE_VIEWS = {
    # role: (landing heading, menu entries, a URL outside the scope or role)
    "hq_manager": ("HQ overview", ["Overview", "Finance", "Playbook", "Inbox"], None),
    "region_manager": ("East", ["My region", "Finance", "Playbook", "Inbox"], "/regions/WEST"),
    "branch_manager": ("Branch SH01", ["My branch", "Finance", "Inbox"], "/branches/HZ01"),
    "finance": ("Finance", ["Overview", "Finance", "Inbox"], "/admin/users"),
    "staff": ("Branch SH01", ["My branch", "Playbook", "Inbox"], "/overview"),
    "admin": ("HQ overview", ["Overview", "Users"], None),
}
SCREENSHOT_OF = {
    "hq_manager": "overview",
    "region_manager": "region",
    "branch_manager": "branch",
    "finance": "finance",
    "admin": "overview-admin",
    "staff": "branch-staff",
}


@pytest.mark.parametrize("role", sorted(ROLE_VIEWS))
def test_each_role_signs_in_and_sees_only_what_it_may(app, people, hq_url, open_page, role):
    seed_activity(app, people)
    heading, menu, hidden = ROLE_VIEWS[role]
    page = open_page()

    sign_in(page, hq_url, role)

    expect(page.get_by_role("heading", level=1)).to_contain_text(heading)
    nav = page.get_by_role("navigation", name="Main menu")
    for entry in menu:
        expect(nav.get_by_role("link", name=entry)).to_be_visible()
    if role != "admin":
        expect(nav.get_by_role("link", name="Users")).to_have_count(0)
    page.wait_for_timeout(300)  # charts drawn
    shot(page, SCREENSHOT_OF[role])
    if hidden:
        answer = page.goto(f"{hq_url}/console{hidden}")
        assert answer.status in (403, 404)
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Not found" if answer.status == 404 else "Not allowed"
        )


def test_an_hq_manager_drills_down_from_region_to_deal(app, people, hq_url, open_page):
    ids = seed_activity(app, people)
    page = open_page()
    sign_in(page, hq_url, "hq_manager")

    page.locator("#regions").get_by_role("link", name="EAST").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("East")
    page.locator("#branches").get_by_role("link", name="SH01").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Branch SH01")
    page.locator("#reps").get_by_role("link", name="SH01-001").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Rep SH01-001")
    shot(page, "rep")
    page.locator(f'a[href="/console/deals/{ids["deal"]}"]').first.click()

    timeline = page.locator("#timeline tbody tr")
    expect(timeline).to_have_count(3)
    expect(timeline.nth(1)).to_contain_text("met the CIO")
    shot(page, "deal")


def test_a_region_manager_acknowledges_a_flag_and_approves_the_big_deal(
    app, people, hq_url, open_page
):
    from hq_server.extensions import db
    from hq_server.models import Approval, LaggingFlag

    seed_activity(app, people)
    flag_id = add_flag(app, "SH01")
    page = open_page()
    sign_in(page, hq_url, "region_manager")

    flag = page.locator(f"#flag-{flag_id}")
    expect(flag).to_contain_text("win rate 12% on 58 closed deals")
    flag.get_by_label("Note").fill("spoke to the branch manager")
    flag.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("status").first).to_have_text("The flag is acknowledged.")
    expect(page.locator(f"#flag-{flag_id}")).to_contain_text("Acknowledged")

    approval = page.locator("#approvals tbody tr").filter(has_text="Big rollout")
    approval.get_by_label("Note").fill("strategic account")
    approval.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status").first).to_have_text("Approved: the entry now counts.")
    expect(page.locator("#approvals")).to_have_count(0)
    shot(page, "region-after-actions")

    with app.app_context():
        assert db.session.get(LaggingFlag, flag_id).note == "spoke to the branch manager"
        decided = db.session.scalars(select(Approval)).one()
        assert (decided.status, decided.decided_by) == ("approved", "region_manager-user")


def test_finance_downloads_the_workbook_and_a_table(app, people, hq_url, open_page, tmp_path):
    seed_activity(app, people)
    page = open_page()
    sign_in(page, hq_url, "finance")
    page.get_by_label("Unit", exact=True).select_option("EAST")
    page.get_by_role("button", name="Show").first.click()
    east = pipeline_of(app, "EAST")
    amount = f"{float(east['open']['amount']):,.2f}"
    expect(page.locator("#live-headline")).to_contain_text(f"CN¥{amount}")

    with page.expect_download() as workbook:
        page.get_by_role("link", name="Download workbook (.xlsx)").click()
    saved = tmp_path / workbook.value.suggested_filename
    workbook.value.save_as(saved)
    with page.expect_download() as table:
        page.locator("#by-category").get_by_role("button", name="Download CSV").click()
    csv_file = tmp_path / "table.csv"
    table.value.save_as(csv_file)

    assert saved.name.startswith("pipeline-EAST-") and saved.suffix == ".xlsx"
    book = load_workbook(saved)
    assert {"Summary", "By category", "By close month", "Deals"} <= set(book.sheetnames)
    assert len(list(book["Deals"].iter_rows(values_only=True))) == 1 + east["open"]["count"]
    rows = csv_file.read_text(encoding="utf-8-sig").splitlines()
    assert rows[0] == "Category,Deals,Amount,Weighted"
    line = east["by_category"]["pipeline"]
    assert f"Pipeline,{line['count']},{line['amount']},{line['weighted']}" in rows
    page.get_by_label("As of (past moment)").fill("2026-11-02T09:00")
    page.get_by_role("button", name="Show").first.click()
    expect(page.locator("#past-headline")).to_be_visible()
    shot(page, "finance-as-of")


def test_the_playbook_page_and_inbox(app, people, hq_url, open_page):
    seed_activity(app, people)
    page = open_page()
    sign_in(page, hq_url, "hq_manager")

    page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Playbook").click()
    expect(page.locator("#rules")).to_contain_text("big-deal-needs-regional-approval")
    shot(page, "playbook")
    page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Inbox").click()
    expect(page.locator("#approvals")).to_contain_text("Big rollout")
    shot(page, "inbox")


def test_an_admin_adds_a_user_on_the_users_page(app, people, hq_url, open_page):
    page = open_page()
    sign_in(page, hq_url, "admin")
    page.get_by_role("link", name="Users").click()

    page.locator("#new-username").fill("li.na")
    page.locator("#new-name").fill("Li Na")
    page.locator("#new-role").select_option("branch_manager")
    page.locator("#new-scope").select_option("CD01")
    page.locator("#new-password").fill("a long enough secret")
    page.get_by_role("button", name="Add user").click()

    expect(page.locator("#user-li\\.na")).to_contain_text("li.na")
    shot(page, "users")


def test_the_console_switches_to_chinese_and_formats_for_it(app, people, hq_url, open_page):
    seed_activity(app, people)
    page = open_page()
    sign_in(page, hq_url, "finance")

    page.get_by_role("link", name="中文").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("财务")
    amount = f"{float(pipeline_of(app, 'HQ')['open']['amount']):,.2f}"
    expect(page.locator("#live-headline")).to_contain_text(f"¥{amount}")
    assert "CN¥" not in page.locator("#live-headline").inner_text()
    shot(page, "finance-zh")


def test_a_visit_on_the_agents_page_reaches_the_branch_page_live(
    app, people, hq_url, open_page, tmp_path
):
    from branch_agent.cli import main as agent_cli
    from branch_agent.web import create_staff_app

    data_dir = tmp_path / "agent"
    runner = CliRunner()
    init = runner.invoke(
        agent_cli,
        [
            "--data-dir",
            str(data_dir),
            "init",
            "--hq",
            hq_url,
            "--token",
            people.agent_tokens["SH01"],
        ],
    )
    assert init.exit_code == 0 and "connected to HQ as branch SH01" in init.output, init.output
    manager = open_page()
    sign_in(manager, hq_url, "branch_manager")
    expect(manager.locator("#live-feed")).to_contain_text("Nothing received in the last week.")
    manager.evaluate("window.stillTheSamePage = true")

    with Served(create_staff_app(data_dir, secret_key="agent-test")) as agent:
        staff = open_page(favicon_missing=True)  # the agent's page links no icon
        staff.goto(f"{agent.url}/visit")
        staff.get_by_label("Sales rep").select_option("SH01-002")
        staff.get_by_label("Customer").fill("ACME Shanghai")
        staff.get_by_label("Met the decision maker").check()
        staff.get_by_label("Outcome").fill("demo booked for Friday")
        staff.get_by_role("button", name="Save").click()
        expect(staff.get_by_text("Saved — it will reach HQ at the next sync.")).to_be_visible()
        shot(staff, "agent-visit")
    synced = runner.invoke(agent_cli, ["--data-dir", str(data_dir), "sync"])
    assert synced.exit_code == 0 and "1 synced" in synced.output, synced.output

    feed = manager.locator("#live-feed")
    expect(feed).to_contain_text("demo booked for Friday", timeout=20_000)
    expect(feed).to_contain_text("decision maker met")
    assert manager.evaluate("window.stillTheSamePage") is True  # updated without a reload
    shot(manager, "branch-live")
