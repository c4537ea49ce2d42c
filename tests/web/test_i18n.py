"""Chinese and English: chosen from the browser, switchable, numbers and dates per locale."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "hq_server" / "web" / "translations"
PO = TRANSLATIONS / "zh_CN" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")


def test_the_browser_language_chooses_chinese(client, company):
    page = client.get("/console/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})

    body = page.get_data(as_text=True)
    assert '<html lang="zh-CN">' in body
    assert "登录" in body and "用户名" in body and "Sign in" not in body


def test_english_is_the_default(client, company):
    body = client.get("/console/login", headers={"Accept-Language": "fr"}).get_data(as_text=True)

    assert '<html lang="en">' in body and "Sign in" in body


def test_the_switch_remembers_the_language_and_goes_back(signed_in, activity):
    client = signed_in("hq_manager")
    english = client.get("/console/overview").get_data(as_text=True)
    assert "Regions side by side" in english

    answer = client.get("/console/lang/zh_CN?next=/console/overview")

    assert answer.status_code == 302 and answer.location == "/console/overview"
    chinese = client.get("/console/overview").get_data(as_text=True)
    assert "各大区对比" in chinese and "Regions side by side" not in chinese
    assert "/console/lang/en?next=/console/overview" in chinese


def test_the_switch_only_goes_back_to_this_site(client):
    answer = client.get("/console/lang/en?next=//evil.example/")

    assert answer.location == "/console/"
    assert client.get("/console/lang/xx").status_code == 404


def test_money_and_dates_follow_the_locale(signed_in, activity):
    client = signed_in("finance")
    english = client.get("/console/finance?unit=EAST").get_data(as_text=True)
    client.get("/console/lang/zh_CN")
    chinese = client.get("/console/finance?unit=EAST").get_data(as_text=True)

    assert "CN¥58,000.00" in english
    assert "¥58,000.00" in chinese and "CN¥" not in chinese
    assert "年" in chinese  # dates as 2026年11月23日


def test_reasons_and_rule_messages_come_in_the_page_language(app, signed_in, company):
    from tests.web.conftest import add_flag

    add_flag(app, "SH01")
    client = signed_in("region_manager")
    assert "win rate 12% on 58 deals" in client.get("/console/regions/EAST").get_data(as_text=True)

    client.get("/console/lang/zh_CN")
    chinese = client.get("/console/regions/EAST").get_data(as_text=True)

    assert "赢单率 12%,共 58 个商机" in chinese and "win rate 12% on 58" not in chinese


def test_every_message_of_the_console_has_a_chinese_translation():
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

    assert len(found) > 300
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
