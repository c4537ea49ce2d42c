"""The staff page: forms queue the right events, HQ's refusals can be fixed, two languages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from branch_agent.outbox import Outbox
from branch_agent.recorder import build_event, record
from branch_agent.web import create_staff_app

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "branch_agent" / "translations"
PO = TRANSLATIONS / "zh_CN" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")

BRANCH = {"code": "SH01", "name": "Shanghai Pudong", "timezone": "Asia/Shanghai"}
REPS = [{"code": "SH01-007", "name": "Wang Wei"}, {"code": "SH01-008", "name": "Li Na"}]
STAGES = [
    {"name": "lost", "order": 0, "probability": 0, "forecast_category": "omitted",
     "is_won": False, "is_lost": True},
    {"name": "lead", "order": 1, "probability": 0.1, "forecast_category": "pipeline",
     "is_won": False, "is_lost": False},
    {"name": "visit", "order": 2, "probability": 0.3, "forecast_category": "pipeline",
     "is_won": False, "is_lost": False},
    {"name": "won", "order": 4, "probability": 1, "forecast_category": "closed",
     "is_won": True, "is_lost": False},
]  # fmt: skip
PAST = "2025-03-01T09:30"  # a datetime-local value, read in the branch's zone (UTC+8)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    with Outbox(tmp_path) as outbox:
        outbox.set_cache(branch=BRANCH, reps=REPS, stages=STAGES)
    return tmp_path


@pytest.fixture
def outbox(data_dir: Path):
    with Outbox(data_dir) as store:
        yield store


@pytest.fixture
def app(data_dir: Path):
    return create_staff_app(data_dir, secret_key="test")


@pytest.fixture
def client(app):
    return app.test_client()


def post(client, url: str, data: dict, **kwargs):
    """POST a form with the session's CSRF token, as the browser would."""
    page = client.get("/visit").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post(url, data={"csrf_token": token, **data}, **kwargs)


def open_deal(outbox: Outbox, name: str = "ACME rollout", customer: str = "ACME") -> str:
    _, event, _ = record(
        outbox, "deal.opened", "SH01-007",
        {"name": name, "amount": "50000", "currency": "CNY"}, customer=customer,
    )  # fmt: skip
    return event["deal"]


def rejected_row(outbox: Outbox, type_: str, data: dict, errors=None, **kwargs) -> dict:
    """Queue an event, send it, and let HQ refuse it."""
    event = build_event(outbox, type_, "SH01-007", data, **kwargs)
    seq, _ = outbox.add(event)
    outbox.claim(10)
    outbox.settle([{
        "index": 0, "id": event["id"], "status": "rejected", "code": "unknown_rep",
        "message": "no rep with this code",
        "errors": errors or {"rep": ["unknown rep SH01-007"]},
    }])  # fmt: skip
    return outbox.get(seq)


# recording ------------------------------------------------------------------


def test_the_visit_form_queues_a_visit_in_the_branch_time_zone(client, outbox):
    response = post(client, "/visit", {
        "rep": "SH01-007", "customer": "ACME", "decision_maker_met": "1",
        "outcome": "demo booked", "next_step": "send quote", "occurred_at": PAST,
    })  # fmt: skip

    assert response.status_code == 302
    [row] = outbox.list()
    body = row["body"]
    assert (row["type"], row["state"], row["source"]) == ("visit.logged", "pending", "desk")
    assert body["rep"] == "SH01-007"
    assert body["customer"] == "ACME"
    assert body["occurred_at"] == "2025-03-01T09:30:00+08:00"
    assert body["data"] == {
        "decision_maker_met": True, "outcome": "demo booked", "next_step": "send quote"
    }  # fmt: skip
    assert "deal" not in body
    home = client.get(response.location).get_data(as_text=True)
    assert "Saved — it will reach HQ at the next sync." in home


def test_the_call_form_turns_minutes_into_seconds_and_boxes_into_booleans(client, outbox):
    post(client, "/call", {
        "rep": "SH01-008", "customer": "ACME", "connected": "1", "presented": "1",
        "outcome": "call back Monday", "duration": "2.5", "occurred_at": PAST,
    })  # fmt: skip

    [row] = outbox.list()
    assert row["type"] == "call.logged"
    assert row["body"]["data"] == {
        "connected": True, "reached_decision_maker": False, "presented": True,
        "outcome": "call back Monday", "duration_s": 150,
    }  # fmt: skip


def test_the_quote_form_names_products_competitor_and_the_deals_customer(client, outbox):
    deal = open_deal(outbox)

    post(client, "/quote", {
        "rep": "SH01-007", "deal": deal, "amount": "12,000.50", "currency": "cny",
        "discount_pct": "10%", "products": "GTX Pro， GTX Basic, ", "competitor_name": "Rival",
        "competitor_price": "11000", "occurred_at": PAST,
    })  # fmt: skip

    row = outbox.list()[0]
    assert row["type"] == "quote.issued"
    assert row["deal"] == deal
    assert row["body"]["customer"] == "ACME"
    assert row["body"]["data"] == {
        "amount": "12000.50", "currency": "CNY", "discount_pct": "10",
        "products": ["GTX Pro", "GTX Basic"], "competitor": {"name": "Rival", "price": "11000"},
    }  # fmt: skip


def test_a_quote_without_a_competitor_name_sends_no_competitor(client, outbox):
    deal = open_deal(outbox)

    post(client, "/quote", {"rep": "SH01-007", "deal": deal, "amount": "900", "currency": "CNY"})

    assert "competitor" not in outbox.list()[0]["body"]["data"]


def test_the_new_deal_form_opens_a_deal_in_the_first_open_stage(client, outbox):
    page = client.get("/deal").get_data(as_text=True)
    assert re.search(r'<option value="lead" selected>', page)

    post(client, "/deal", {
        "rep": "SH01-007", "name": "Metro fit-out", "customer": "METRO", "amount": "80000",
        "currency": "CNY", "expected_close": "2027-01-31", "stage": "lead",
    })  # fmt: skip

    [row] = outbox.list()
    assert row["type"] == "deal.opened"
    assert row["deal"]  # the desk gives the new deal its id
    assert row["body"]["customer"] == "METRO"
    assert row["body"]["data"] == {
        "name": "Metro fit-out", "amount": "80000", "currency": "CNY",
        "expected_close": "2027-01-31", "stage": "lead",
    }  # fmt: skip


@pytest.mark.parametrize(
    "action,form,type_,data",
    [
        ("stage", {"to": "visit"}, "deal.stage_changed", {"to": "visit"}),
        ("won", {"amount": "48000", "currency": "CNY"}, "deal.won",
         {"amount": "48000", "currency": "CNY"}),
        ("won", {"amount": "", "currency": "CNY"}, "deal.won", {}),
        ("lost", {"loss_reason": "price", "competitor": "Rival"}, "deal.lost",
         {"loss_reason": "price", "competitor": {"name": "Rival"}}),
    ],
)  # fmt: skip
def test_the_deal_change_forms_queue_their_event(client, outbox, action, form, type_, data):
    deal = open_deal(outbox)

    response = post(client, f"/deal/{action}", {"rep": "SH01-007", "deal": deal, **form})

    assert response.status_code == 302
    row = outbox.list()[0]
    assert (row["type"], row["deal"]) == (type_, deal)
    assert row["body"]["data"] == data


def test_the_deal_selects_offer_open_deals_and_cached_leads_by_name(client, outbox):
    open_deal(outbox, "ACME rollout", "ACME")
    closed = open_deal(outbox, "Old deal", "OLDCO")
    record(outbox, "deal.lost", "SH01-007", {"loss_reason": "price"}, deal=closed)
    lead = "0193f0c4-5d2e-7c1a-9f00-3b8e2a6d1c44"
    outbox.set_cache(leads=[{"deal": lead, "customer": "NEWCO", "name": "Web lead",
                             "rep": "SH01-007", "last_activity_at": None}])  # fmt: skip

    page = client.get("/deal/stage").get_data(as_text=True)

    assert "ACME rollout — ACME" in page
    assert f'<option value="{lead}">Web lead — NEWCO</option>' in page
    assert "Old deal" not in page


def test_an_invalid_entry_is_shown_again_with_its_errors_and_nothing_is_queued(client, outbox):
    deal = open_deal(outbox)
    before = outbox.counts()["pending"]

    response = post(client, "/quote", {
        "rep": "SH01-999", "deal": deal, "amount": "lots", "currency": "CNY",
        "products": "GTX Pro", "occurred_at": PAST,
    })  # fmt: skip

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert outbox.counts()["pending"] == before
    assert "Nothing was saved" in page
    assert 'value="lots"' in page and 'value="GTX Pro"' in page
    amount = page[page.index('id="f-amount"') :]
    assert re.match(r'[^<]*>\s*<p class="error" id="f-amount-err">Not a valid number', amount)
    assert '<p class="error" id="f-rep-err">not a rep of this branch</p>' in page


def test_unreadable_input_is_named_in_the_page_language(client, outbox):
    response = post(
        client, "/call",
        {"rep": "SH01-007", "connected": "1", "duration": "half an hour", "occurred_at": "soon"},
        headers={"Accept-Language": "zh-CN"},
    )  # fmt: skip

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "请输入分钟数。" in page
    assert "请输入日期和时间。" in page
    assert "时长（分钟）" in page
    assert outbox.list() == []


def test_the_schemas_messages_are_said_in_the_page_language(client, outbox):
    deal = open_deal(outbox)
    response = post(
        client, "/quote",
        {"rep": "SH01-999", "deal": deal, "amount": "-5", "currency": "CNY", "occurred_at": PAST},
        headers={"Accept-Language": "zh-CN"},
    )  # fmt: skip

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert '<p class="error" id="f-rep-err">不是本分公司的销售代表</p>' in page
    assert "须在 0 到 10000000000000 之间。" in page
    assert "Must be greater" not in page and "not a rep" not in page


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_a_post_without_the_sessions_token_is_refused(client, outbox, token):
    client.get("/visit")  # the session has a token; the form does not send it
    data = {"rep": "SH01-007", "customer": "ACME", "occurred_at": PAST}
    if token is not None:
        data["csrf_token"] = token

    response = client.post("/visit", data=data)

    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
    assert outbox.list() == []


def test_a_discard_without_the_token_leaves_the_entry_rejected(client, outbox):
    row = rejected_row(outbox, "visit.logged", {"decision_maker_met": False}, customer="ACME")

    response = client.post(f"/rejected/{row['seq']}/discard", data={"csrf_token": "x"})

    assert response.status_code == 400
    assert outbox.get(row["seq"])["state"] == "rejected"


# home -----------------------------------------------------------------------


def test_the_home_page_lists_todays_entries_and_the_queue(client, outbox):
    rejected_row(outbox, "call.logged", {"connected": True}, customer="REJECTCO")
    record(outbox, "visit.logged", "SH01-007", {"decision_maker_met": True}, customer="TODAYCO")
    old, _, _ = record(outbox, "visit.logged", "SH01-008", {"decision_maker_met": True},
                    customer="YESTERDAYCO")  # fmt: skip
    two_days_ago = (datetime.now(UTC) - timedelta(days=2)).isoformat(timespec="microseconds")
    outbox.conn.execute("UPDATE outbox SET created_at = ? WHERE seq = ?", (two_days_ago, old))

    page = client.get("/").get_data(as_text=True)

    assert "TODAYCO" in page and "REJECTCO" in page
    assert "YESTERDAYCO" not in page
    assert "Wang Wei (SH01-007)" in page
    assert '<span class="badge rejected">Needs fixing</span>' in page
    assert re.search(r'class="badge pending">Waiting to send</span> <strong>2</strong>', page)
    assert re.search(r'class="badge rejected">Needs fixing</span> <strong>1</strong>', page)
    assert "1 entry needs fixing" in page
    assert "Rejected (1)" in page
    assert "Shanghai Pudong" in page and "SH01" in page


def test_the_home_page_shows_the_stored_sync_state(client, outbox):
    outbox.set_meta(
        hq_url="https://hq.example.com", last_push_at="2025-03-01T01:00:00+00:00",
        last_error="connection refused", last_error_at="2025-03-01T02:00:00+00:00",
        playbook_version="7", clock_skew_s="-3",
    )  # fmt: skip

    page = client.get("/").get_data(as_text=True)

    assert "https://hq.example.com" in page
    assert "2025-03-01 09:00" in page  # the push, in the branch's time zone
    assert re.search(r'<dd class="error">connection refused\s*<span class="ago">'
                     r"\(2025-03-01 10:00\)", page)  # fmt: skip
    assert "<dd>7</dd>" in page
    assert "-3 s" in page
    assert "needs fixing" not in page


def test_the_live_sync_status_wins_over_the_stored_one(data_dir):
    with Outbox(data_dir) as store:
        store.set_meta(last_error="stale error", hq_url="https://old.example.com")
    pushed = datetime(2025, 3, 1, 1, tzinfo=UTC)
    live = {"hq_url": "https://live.example.com", "last_push_at": pushed}
    app = create_staff_app(data_dir, sync_status=lambda: live)

    page = app.test_client().get("/").get_data(as_text=True)

    assert "https://live.example.com" in page
    assert "2025-03-01 09:00" in page
    assert "https://old.example.com" not in page
    assert "stale error" in page


def test_the_session_key_is_kept_in_the_store(data_dir, outbox):
    first = create_staff_app(data_dir).secret_key
    second = create_staff_app(data_dir).secret_key

    assert first == second == outbox.get_meta("web_secret")
    assert len(first) >= 32


# rejected entries -----------------------------------------------------------


def test_the_rejected_page_shows_hqs_reasons(client, outbox):
    row = rejected_row(outbox, "visit.logged", {"decision_maker_met": True}, customer="ACME")

    page = client.get("/rejected/").get_data(as_text=True)

    assert "no rep with this code" in page
    assert "<code>unknown_rep</code>" in page
    assert "<strong>Sales rep:</strong> unknown rep SH01-007" in page
    assert f'href="/rejected/{row["seq"]}/fix"' in page
    assert f'action="/rejected/{row["seq"]}/discard"' in page
    assert 'onsubmit="return confirm(this.dataset.confirm)"' in page


def test_hqs_field_errors_are_labelled_as_in_the_entrys_form(client, outbox):
    deal = open_deal(outbox)
    outbox.claim(10)
    errors = {"data": {"amount": ["too small"], "products": {"0": ["too long"]}}}
    rejected_row(outbox, "deal.won", {"amount": "1"}, errors=errors, deal=deal)

    page = client.get("/rejected/", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)

    assert "<strong>最终金额:</strong> too small" in page
    assert "<strong>产品:</strong> too long" in page


def test_hqs_reasons_are_said_in_the_page_language(client, outbox):
    errors = {"occurred_at": ["Not a valid aware datetime."], "data": {"tip": ["Unknown field."]}}
    rejected_row(outbox, "visit.logged", {"decision_maker_met": True}, errors=errors)

    chinese = client.get("/rejected/", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    english = client.get("/rejected/").get_data(as_text=True)

    assert "没有此代码的销售代表" in chinese and "no rep with this code" not in chinese
    assert "<strong>时间:</strong> 日期时间须带时区。" in chinese
    assert "未知字段。" in chinese
    assert "no rep with this code" in english
    assert "<strong>When:</strong> Not a valid aware datetime." in english


def test_fix_shows_the_entry_and_queues_the_correction_in_its_place(client, outbox):
    row = rejected_row(
        outbox, "visit.logged", {"decision_maker_met": True, "outcome": "demo"},
        customer="ACME", occurred_at=datetime(2025, 3, 1, 9, 30),
    )  # fmt: skip
    url = f"/rejected/{row['seq']}/fix"

    page = client.get(url).get_data(as_text=True)
    assert 'value="ACME"' in page and 'value="demo"' in page
    assert 'value="2025-03-01T09:30"' in page
    assert re.search(r'name="decision_maker_met" value="1" checked', page)
    assert "no rep with this code" in page

    response = post(client, url, {
        "rep": "SH01-008", "customer": "ACME", "decision_maker_met": "1", "outcome": "demo",
        "occurred_at": "2025-03-01T09:30",
    })  # fmt: skip

    assert response.status_code == 302
    old = outbox.get(row["seq"])
    [new] = outbox.list(state="pending")
    assert old["state"] == "discarded"
    assert old["replaced_by"] == new["id"] != old["id"]
    assert (new["source"], new["rep"], new["type"]) == ("correction", "SH01-008", "visit.logged")
    assert new["body"]["customer"] == "ACME"
    assert new["body"]["occurred_at"] == "2025-03-01T09:30:00+08:00"
    assert "Corrected" in client.get(response.location).get_data(as_text=True)


def test_fixing_a_new_deal_keeps_its_deal_id(client, outbox):
    row = rejected_row(outbox, "deal.opened", {"name": "ACME", "amount": "5", "currency": "CNY"})

    post(client, f"/rejected/{row['seq']}/fix", {
        "rep": "SH01-007", "name": "ACME rollout", "amount": "5000", "currency": "CNY",
        "stage": "lead", "occurred_at": PAST,
    })  # fmt: skip

    [new] = outbox.list(state="pending")
    assert new["deal"] == row["deal"]
    assert new["body"]["data"]["name"] == "ACME rollout"


def test_other_types_are_fixed_as_json(client, outbox):
    deal = open_deal(outbox)
    outbox.claim(10)
    row = rejected_row(outbox, "lead.recycled", {"reason": "x"}, deal=deal)
    url = f"/rejected/{row['seq']}/fix"
    assert "&#34;reason&#34;: &#34;x&#34;" in client.get(url).get_data(as_text=True)

    for data in ("[1, 2]", '{"reason": ' + "[" * 100_000 + "]" * 100_000 + "}"):
        bad = post(client, url, {"rep": "SH01-007", "data": data, "occurred_at": PAST})
        assert bad.status_code == 422
        assert "Enter a JSON object" in bad.get_data(as_text=True)
        assert outbox.get(row["seq"])["state"] == "rejected"

    post(client, url, {"rep": "SH01-007", "data": '{"reason": "no budget"}', "occurred_at": PAST})

    [new] = outbox.list(state="pending")
    assert (new["type"], new["deal"]) == ("lead.recycled", deal)
    assert new["body"]["data"] == {"reason": "no budget"}
    assert outbox.get(row["seq"])["state"] == "discarded"


def test_an_invalid_fix_is_shown_again_and_the_entry_stays_rejected(client, outbox):
    row = rejected_row(outbox, "call.logged", {"connected": True}, customer="ACME")

    response = post(client, f"/rejected/{row['seq']}/fix", {
        "rep": "SH01-007", "connected": "1", "duration": "-5", "occurred_at": PAST,
    })  # fmt: skip

    assert response.status_code == 422
    assert 'id="f-duration-err">Must be greater than or equal to 0' in response.get_data(
        as_text=True
    )
    assert outbox.get(row["seq"])["state"] == "rejected"
    assert outbox.list(state="pending") == []


def test_discard_marks_the_entry_discarded(client, outbox):
    row = rejected_row(outbox, "visit.logged", {"decision_maker_met": False}, customer="ACME")

    response = post(client, f"/rejected/{row['seq']}/discard", {})

    assert response.status_code == 302
    assert outbox.get(row["seq"])["state"] == "discarded"
    assert outbox.get(row["seq"])["replaced_by"] is None
    page = client.get(response.location).get_data(as_text=True)
    assert "Discarded — it will not be sent to HQ." in page
    assert "no rep with this code" not in page


def test_an_entry_that_is_not_rejected_cannot_be_fixed_or_discarded(client, outbox):
    seq, _, _ = record(outbox, "visit.logged", "SH01-007", {"decision_maker_met": True})

    fix = client.get(f"/rejected/{seq}/fix")
    discard = post(client, f"/rejected/{seq}/discard", {}, follow_redirects=True)

    assert fix.status_code == 302
    assert "already been fixed or discarded" in discard.get_data(as_text=True)
    assert outbox.get(seq)["state"] == "pending"


# languages ------------------------------------------------------------------


def nav(page: str) -> list[str]:
    return re.findall(r'<nav class="main"[^>]*>(.*?)</nav>', page, re.S)[0]


def test_a_chinese_browser_gets_the_chinese_page(client):
    page = client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    text = page.get_data(as_text=True)

    assert '<html lang="zh-CN">' in text
    assert all(word in nav(text) for word in ("首页", "拜访", "电话", "报价", "商机", "被退回"))
    assert "今天的记录" in text
    assert ">English</a>" in text


def test_an_english_browser_gets_the_english_page(client):
    text = client.get("/visit", headers={"Accept-Language": "en-US"}).get_data(as_text=True)

    assert '<html lang="en">' in text
    assert "Home" in nav(text) and "首页" not in nav(text)
    assert 'href="/lang/zh_CN?next=/visit">中文</a>' in text


def test_the_switch_link_flips_the_language_and_returns_to_the_page(client):
    chinese = {"Accept-Language": "zh-CN"}

    response = client.get("/lang/en?next=/call", headers=chinese)
    assert (response.status_code, response.location) == (302, "/call")
    english = client.get("/call", headers=chinese).get_data(as_text=True)
    assert "Log a call" in english and "登记电话" not in english

    client.get("/lang/zh_CN?next=/call")
    chinese_again = client.get("/call", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "登记电话" in chinese_again


@pytest.mark.parametrize("target", ["//evil.example.com/", "https://evil.example.com/"])
def test_the_switch_link_only_goes_back_to_this_site(client, target):
    response = client.get("/lang/en", query_string={"next": target})

    assert response.location == "/"


def test_every_message_of_the_page_has_a_chinese_translation():
    with PO.open("rb") as f:
        catalog = read_po(f)
    with (TRANSLATIONS / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "_l": None}
    found = {
        message if isinstance(message, str) else message[0]
        for _, _, message, *_ in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords
        )
    }

    assert len(found) > 50
    assert sorted(found - {m.id if isinstance(m.id, str) else m.id[0] for m in catalog}) == []
    for message in catalog:
        if message.id:
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            assert all(strings), f"no translation for {message.id!r}"
            assert not message.fuzzy, f"fuzzy translation for {message.id!r}"


def test_the_compiled_catalog_matches_the_po_file():
    with PO.open("rb") as f:
        po = read_po(f)
    compiled = BytesIO()
    write_mo(compiled, po)
    compiled.seek(0)
    with MO.open("rb") as f:
        shipped = read_mo(f)

    def strings(catalog) -> dict:
        return {
            m.id if isinstance(m.id, str) else tuple(m.id): (
                m.string if isinstance(m.string, str) else tuple(m.string)
            )
            for m in catalog
            if m.id
        }

    assert strings(shipped) == strings(read_mo(compiled))
    assert len(strings(shipped)) == len([m for m in po if m.id])
