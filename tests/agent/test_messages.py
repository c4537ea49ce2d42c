"""The schemas' and HQ's English messages, said in the staff page's language."""

from __future__ import annotations

import re

import pytest
from marshmallow import fields

from branch_agent.web import create_staff_app
from branch_agent.web.messages import MESSAGES, REJECTION_MESSAGES, RULE_MESSAGES, say
from shared import protocol
from shared.events import DATA_SCHEMAS, ENVELOPE, load_event


@pytest.fixture
def app(tmp_path):
    return create_staff_app(tmp_path, secret_key="test")


def in_language(app, language: str, message):
    with app.test_request_context("/", headers={"Accept-Language": language}):
        return say(message)


def _field_templates(schema, out: set) -> set:
    """Every message template the schema's fields and validators can load with."""
    out.update(schema.error_messages.values())
    for f in schema.fields.values():
        _templates_of(f, out)
    return out


def _templates_of(f: fields.Field, out: set) -> None:
    out.update(m for key, m in f.error_messages.items() if key != "format")  # format: dumping
    for v in f.validators:
        for attr in ("error", "message_min", "message_max", "message_all", "message_equal"):
            if isinstance(getattr(v, attr, None), str):
                out.add(getattr(v, attr))
    if isinstance(f, fields.Nested):
        _field_templates(f.schema, out)
    if isinstance(f, fields.List):
        _templates_of(f.inner, out)


def test_every_message_the_event_schemas_can_give_is_listed():
    templates = _field_templates(ENVELOPE, set())
    for schema in DATA_SCHEMAS.values():
        _field_templates(schema, templates)
    # The datetime field names its kind in its message; the rest are templates of values.
    said = {
        re.sub(r"\{(\w+)\}", r"%(\1)s", t.format(obj_type="datetime", awareness="aware"))
        if "obj_type" in t
        else re.sub(r"\{(\w+)\}", r"%(\1)s", t)
        for t in templates
    }

    assert sorted(said - set(MESSAGES)) == []


def test_hqs_reasons_and_the_nul_rule_are_listed():
    assert set(REJECTION_MESSAGES) == set(protocol.REJECTION_MESSAGES.values())
    assert protocol.NUL_MESSAGE in RULE_MESSAGES


@pytest.mark.parametrize(
    ("raw", "path", "chinese"),
    [
        ({"amount": -1, "currency": "CNY"}, "data.amount", "须在 0 到 10000000000000 之间。"),
        ({"amount": "lots", "currency": "CNY"}, "data.amount", "不是有效的数字。"),
        (
            {"amount": 5, "currency": "yuan"},
            "data.currency",
            "须为 ISO 4217 货币代码，例如 CNY",
        ),
        ({"currency": "CNY"}, "data.amount", "必填。"),
        ({"amount": 5, "currency": "CNY", "tip": 1}, "data.tip", "未知字段。"),
    ],
)
def test_a_quotes_schema_messages_are_said_in_chinese(app, raw, path, chinese):
    event = {
        "id": "0190a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b", "seq": 1, "type": "quote.issued",
        "occurred_at": "2025-03-01T09:30:00+08:00", "rep": "SH01-007",
        "deal": "0190a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6c", "data": raw,
    }  # fmt: skip
    _, errors = load_event(event)
    for key in path.split("."):
        errors = errors[key]

    assert [in_language(app, "zh-CN", m) for m in errors] == [chinese]
    assert [in_language(app, "en", m) for m in errors] == errors


def test_values_in_a_message_are_carried_over(app):
    assert in_language(app, "zh-CN", "Must be one of: pipeline, best_case, commit.") == (
        "须为以下之一：pipeline, best_case, commit。"
    )
    assert in_language(app, "zh-CN", "Longer than maximum length 500.") == "超过最大长度 500。"
    assert in_language(app, "zh-CN", "required for deal.won events") == "deal.won 记录必填"


def test_a_message_not_listed_is_shown_as_it_came(app):
    assert in_language(app, "zh-CN", "something HQ says today") == "something HQ says today"
    assert in_language(app, "zh-CN", "Not a valid number. Twice.") == "Not a valid number. Twice."
