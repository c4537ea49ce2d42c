"""Loading playbooks: bad files are refused with the path and line of each problem."""

from __future__ import annotations

import json

import pytest

from shared.playbook import Playbook, PlaybookError, load_playbook
from tests.unit.playbook.helpers import HEAD, MESSAGE, THRESHOLD, line_of, playbook_text


def refusal(text: str) -> list[dict]:
    with pytest.raises(PlaybookError) as caught:
        load_playbook(text)
    return caught.value.errors


def only(text: str) -> dict:
    errors = refusal(text)
    assert len(errors) == 1, errors
    return errors[0]


def test_a_small_playbook_loads():
    playbook = load_playbook(playbook_text(THRESHOLD))
    assert playbook.version == 3
    assert playbook.name == "Test playbook"
    assert [s.name for s in playbook.stages] == ["lead", "quote", "won", "lost"]
    assert [r.id for r in playbook.rules] == ["big-discount"]
    assert playbook.calendars["default"].timezone == "Asia/Shanghai"


def test_an_unknown_rule_kind_is_reported_on_its_line():
    text = playbook_text(THRESHOLD + "  - id: odd\n    kind: teleport\n" + MESSAGE)
    error = only(text)
    assert error["path"] == "rules[1].kind"
    assert error["line"] == line_of(text, "kind: teleport")
    assert "unknown rule kind 'teleport'" in error["message"]


def test_a_condition_that_does_not_compile_is_reported_on_its_line():
    text = playbook_text(
        THRESHOLD
        + "  - id: bad-condition\n"
        + "    kind: threshold\n"
        + "    applies_to: [deal.opened]\n"
        + '    condition: "open(data.name)"\n'
        + MESSAGE
    )
    error = only(text)
    assert error["path"] == "rules[1].condition"
    assert error["line"] == line_of(text, "open(data.name)")
    assert "only these functions can be called" in error["message"]


def test_a_multiline_condition_is_reported_on_its_key():
    text = playbook_text(
        "  - id: folded\n"
        "    kind: threshold\n"
        "    applies_to: [quote.issued]\n"
        "    condition: >\n"
        "      data.discount_pct > 15\n"
        "      or data.amont > 5\n" + MESSAGE
    )
    error = only(text)
    assert error["line"] == line_of(text, "condition: >")
    assert "data.amont is not a field of quote.issued" in error["message"]


def test_a_yaml_syntax_error_names_its_line():
    text = playbook_text(THRESHOLD + "  - id: broken\n    kind: [threshold\n    applies_to: x\n")
    error = only(text)
    assert error["line"] == line_of(text, "applies_to: x")
    assert error["path"] == ""


def test_a_tab_indentation_error_names_its_line():
    text = HEAD + "rules:\n\t- id: x\n"
    assert only(text)["line"] == line_of(text, "- id: x")


@pytest.mark.parametrize(
    "snippet,path,words",
    [
        ("version: 3", "version", "Missing data"),
        ("name: Test playbook", "name", "Missing data"),
    ],
)
def test_missing_top_level_keys_are_named(snippet, path, words):
    error = only(playbook_text(THRESHOLD).replace(snippet + "\n", ""))
    assert (error["path"], error["line"]) == (path, 1)
    assert words in error["message"]


def test_unknown_keys_are_errors_at_every_level():
    text = playbook_text(
        THRESHOLD.replace("    kind: threshold\n", "    kind: threshold\n    colour: red\n"),
        extra="owner: hq\n",
    )
    errors = refusal(text)
    assert [(e["path"], e["line"]) for e in errors] == [
        ("owner", line_of(text, "owner: hq")),
        ("rules[0].colour", line_of(text, "colour: red")),
    ]
    assert all(e["message"] == "Unknown field." for e in errors)


def test_an_unknown_event_type_is_named_with_its_position():
    text = playbook_text(THRESHOLD.replace("[quote.issued]", "[quote.issued, quote.sent]"))
    error = only(text)
    assert error["path"] == "rules[0].applies_to[1]"
    assert error["line"] == line_of(text, "quote.sent")
    assert "unknown event type quote.sent" in error["message"]


def test_every_problem_is_reported_at_once_in_line_order():
    text = playbook_text(
        THRESHOLD
        + THRESHOLD.replace('"data.discount_pct > 15"', '"data.nothing > 1"')
        + "  - id: x\n    kind: stall\n    days: 0\n"
        + MESSAGE,
    )
    errors = refusal(text)
    assert [e["path"] for e in errors] == ["rules[1].id", "rules[1].condition", "rules[2].days"]
    assert [e["line"] for e in errors] == sorted(e["line"] for e in errors)
    assert "another rule already has the id 'big-discount'" in errors[0]["message"]


def test_the_refusal_message_lists_every_error_with_its_line():
    text = playbook_text(THRESHOLD.replace("kind: threshold", "kind: teleport"))
    with pytest.raises(PlaybookError) as caught:
        load_playbook(text)
    assert str(caught.value).startswith("the playbook is invalid (1 error)")
    line = line_of(text, "teleport")
    assert f"line {line}: rules[0].kind: unknown rule kind" in str(caught.value)


@pytest.mark.parametrize(
    "message,path,words",
    [
        ('{en: "only English"}', "rules[0].message.zh", "Missing data"),
        ('{en: "a", zh: "b", fr: "c"}', "rules[0].message.fr", "Unknown field"),
        ('{en: "{data.nothing}", zh: "b"}', "rules[0].message.en", "data.nothing is not a field"),
        ('{en: "a", zh: "{data.amount:>99}"}', "rules[0].message.zh", "placeholder"),
        ('{en: "{data.amount.__class__}", zh: "b"}', "rules[0].message.en", "placeholder"),
        ('{en: "{__import__}", zh: "b"}', "rules[0].message.en", "placeholder"),
        ('{en: "{rep.name}", zh: "b"}', "rules[0].message.en", "rep has no parts"),
        ('{en: "a } b", zh: "b"}', "rules[0].message.en", "unmatched '}'"),
        ('{en: "", zh: "b"}', "rules[0].message.en", "Length must be between"),
    ],
)
def test_messages_need_both_languages_and_safe_placeholders(message, path, words):
    text = playbook_text(THRESHOLD.replace(MESSAGE, f"    message: {message}\n"))
    error = only(text)
    assert error["path"] == path
    assert error["line"] == line_of(text, "message:")
    assert words in error["message"]


def test_yaml_1_1_surprises_are_avoided():
    text = playbook_text(
        extra=(
            "calendars:\n"
            "  NO: {hours: [08:30, 17:30], holidays: [2026-10-01]}\n"
            "  ON: {workdays: [mon]}\n"
        )
    )
    playbook = load_playbook(text)
    assert set(playbook.calendars) == {"default", "NO", "ON"}
    assert [t.isoformat() for t in playbook.calendars["NO"].hours] == ["08:30:00", "17:30:00"]


@pytest.mark.parametrize(
    "extra,path,words",
    [
        ("calendars:\n  EAST: {timezone: Mars/Base}\n", "calendars.EAST.timezone", "time zone"),
        ("calendars:\n  EAST: {hours: ['18:00', '09:00']}\n", "calendars.EAST.hours", "before"),
        ("calendars:\n  EAST: {hours: ['09:00', '5pm']}\n", "calendars.EAST.hours[1]", '"09:00"'),
        ("calendars:\n  EAST: {workdays: [funday]}\n", "calendars.EAST.workdays[0]", "one of"),
        ("calendars:\n  EAST: {holidays: [2026-02-30]}\n", "calendars.EAST.holidays[0]", "date"),
        (
            "calendars:\n  EAST: {holidays: [2026-10-10], extra_workdays: [2026-10-10]}\n",
            "calendars.EAST.extra_workdays",
            "both a holiday",
        ),
        ("calendars:\n  'bad code!': {}\n", "calendars.bad code!", "not a valid name"),
        ("definitions:\n  data: 'true'\n", "definitions.data", "reserved"),
        ("definitions:\n  ready: 'data.scor >= 60'\n", "definitions.ready", "not a field"),
        ("definitions:\n  Ready: 'true'\n", "definitions.Ready", "not a valid name"),
    ],
)
def test_calendars_and_definitions_are_checked(extra, path, words):
    text = playbook_text(extra=extra)
    error = only(text)
    assert error["path"] == path
    assert error["line"] == line_of(text, extra.splitlines()[1])
    assert words in error["message"]


def test_definitions_may_use_each_other_but_not_in_a_loop():
    ok = "definitions:\n  a: 'b and data.score > 1'\n  b: 'data.score < 9'\n"
    assert load_playbook(playbook_text(extra=ok)).definitions["a"].test({"data": {"score": 5}})
    loop = "definitions:\n  a: 'b'\n  b: 'c'\n  c: 'a'\n"
    errors = refusal(playbook_text(extra=loop))
    assert "loop: a -> b -> c -> a" in " ".join(e["message"] for e in errors)
    assert {e["path"] for e in errors} <= {"definitions.a", "definitions.b", "definitions.c"}


def test_a_rule_using_a_broken_definition_says_so():
    text = playbook_text(
        THRESHOLD.replace('"data.discount_pct > 15"', "ready"),
        extra="definitions:\n  ready: 'data.score >>> 60'\n",
    )
    errors = refusal(text)
    assert [e["path"] for e in errors] == ["definitions.ready", "rules[0].condition"]
    assert "uses the definition ready, which is invalid" in errors[1]["message"]


@pytest.mark.parametrize(
    "stages,path,words",
    [
        ("  - {name: won2, order: 5, probability: 1.0, forecast_category: closed, won: true}\n",
         "stages", "exactly one stage must be won (found 2)"),
        ("  - {name: lead, order: 5, probability: 0.5, forecast_category: pipeline}\n",
         "stages[4].name", "already called 'lead'"),
        ("  - {name: visit, order: 1, probability: 0.5, forecast_category: pipeline}\n",
         "stages[4].order", "already has order 1"),
        ("  - {name: visit, order: 7, probability: 1.5, forecast_category: pipeline}\n",
         "stages[4].probability", "less than or equal to 1"),
        ("  - {name: visit, order: 7, probability: 0.5, forecast_category: maybe}\n",
         "stages[4].forecast_category", "must be one of"),
        ("  - {name: Visit, order: 7, probability: 0.5, forecast_category: pipeline}\n",
         "stages[4].name", "a-z"),
    ],
)  # fmt: skip
def test_the_stage_table_is_checked(stages, path, words):
    text = (
        playbook_text(extra="")
        .replace("rules:", "")
        .replace("lost: true}\n", "lost: true}\n" + stages)
    )
    error = only(text)
    assert error["path"] == path
    assert words in error["message"]


def test_the_won_stage_must_be_certain_and_the_lost_stage_hopeless():
    text = HEAD.replace("probability: 1.0", "probability: 0.9")
    assert only(text)["message"] == "the won stage has probability 1.0"


@pytest.mark.parametrize(
    "rule,path,words",
    [
        ("kind: required_fields\n    applies_to: [deal.lost, deal.won]\n"
         "    fields: [data.loss_reason]\n",
         "rules[0].fields[0]", "data.loss_reason is not a field of deal.won"),
        ("kind: required_fields\n    applies_to: [deal.lost]\n    fields: [loss_reason]\n",
         "rules[0].fields[0]", "must start with one of"),
        ("kind: requires_prior\n    applies_to: [quote.issued]\n"
         "    prior: {type: visit.logged, condition: 'data.amount > 1'}\n",
         "rules[0].prior.condition", "data.amount is not a field of visit.logged"),
        ("kind: sla\n    start: {type: lead.assigned}\n    stop: {types: [lead.assigned]}\n"
         "    within: {working_hours: 24}\n",
         "rules[0].stop.types", "cannot also stop"),
        ("kind: sla\n    start: {type: lead.assigned}\n    stop: {types: [call.logged]}\n"
         "    within: {working_hours: 24, hours: 2}\n",
         "rules[0].within", "exactly one"),
        ("kind: quota\n    event: {type: visit.logged}\n    period: fortnight\n    min: 3\n",
         "rules[0].period", "must be one of"),
        ("kind: quota\n    event: {type: visit.logged}\n    period: week\n    min: 2.5\n",
         "rules[0].min", "integer"),
        ("kind: stall\n    days: 14\n    stages: [won]\n", "rules[0].stages[0]", "closed"),
        ("kind: stall\n    days: 14\n    stages: [limbo]\n", "rules[0].stages[0]", "no stage"),
        ("kind: approval\n    applies_to: [quote.issued]\n    condition: 'true'\n"
         "    approver: the_boss\n",
         "rules[0].approver", "must be one of"),
        ("kind: threshold\n    applies_to: []\n    condition: 'true'\n",
         "rules[0].applies_to", "Shorter than minimum"),
        ("kind: threshold\n    applies_to: [quote.issued]\n    condition: 'true'\n"
         "    severity: fatal\n",
         "rules[0].severity", "must be one of"),
    ],
)  # fmt: skip
def test_each_rule_kind_checks_what_its_names_refer_to(rule, path, words):
    text = playbook_text(f"  - id: r\n    {rule}" + MESSAGE)
    error = only(text)
    assert error["path"] == path
    assert words in error["message"]


@pytest.mark.parametrize(
    "text,words",
    [
        (HEAD + "name: again\n", "given twice"),
        (HEAD + "definitions:\n  a: &x 'true'\n  b: *x\n", "anchors and aliases"),
        (HEAD + "rules: !!python/object:os.system {}\n", "python/object"),
        ("", "must be a mapping"),
        ("- just a list\n", "must be a mapping"),
        ("x" * 1_000_001, "at most"),
        (HEAD + "rules: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
        (HEAD + "rules: " + "{a: " * 5_000 + "1" + "}" * 5_000 + "\n", "nested too deeply"),
    ],
)
def test_unsafe_or_shapeless_yaml_is_refused(text, words):
    assert words in only(text)["message"]


def test_a_playbook_goes_to_json_and_back_unchanged():
    text = playbook_text(
        THRESHOLD
        + "  - id: sla\n    kind: sla\n    start: {type: lead.assigned}\n"
        + "    stop: {types: [call.logged], condition: 'data.connected'}\n"
        + "    within: {hours: 1.5}\n"
        + MESSAGE
        + "  - id: lost\n    kind: required_fields\n    applies_to: [deal.lost]\n"
        + "    fields: [data.loss_reason, customer]\n    when: 'data.loss_reason != null'\n"
        + "    severity: block\n"
        + MESSAGE,
        extra="definitions:\n  hot: 'data.score > 80'\n"
        "calendars:\n  EAST: {holidays: ['2026-10-01'], extra_workdays: ['2026-10-10']}\n",
    )
    playbook = load_playbook(text)
    document = json.loads(json.dumps(playbook.to_dict()))
    again = Playbook.from_dict(document)
    assert again == playbook
    assert again.to_dict() == document
    assert document["rules"][1]["within"] == {"hours": 1.5}
    assert document["calendars"]["EAST"]["extra_workdays"] == ["2026-10-10"]


def test_a_bad_document_is_refused_without_lines():
    document = load_playbook(playbook_text(THRESHOLD)).to_dict()
    document["rules"][0]["condition"] = "data.discount_pct >"
    with pytest.raises(PlaybookError) as caught:
        Playbook.from_dict(document)
    assert caught.value.errors == [
        {
            "path": "rules[0].condition",
            "line": None,
            "message": "syntax error: invalid syntax at the end of the condition",
        }
    ]
