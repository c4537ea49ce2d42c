"""The condition language: what compiles, what is refused, and how missing values behave."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.playbook import ExpressionError, compile_expression
from shared.playbook.paths import schema_error

EVENT = {
    "id": "e1",
    "type": "quote.issued",
    "rep": "SH01-007",
    "deal": "d1",
    "customer": "ACME-SH",
    "occurred_at": "2026-11-23T10:00:00+08:00",
    "data": {
        "amount": Decimal("1200000.00"),
        "discount_pct": Decimal("16.50"),
        "currency": "CNY",
        "products": ["GTX Pro", "GTX Basic"],
        "competitor": {"name": "Rival", "price": Decimal("990.00")},
        "from": "lead",
        "flag": True,
    },
}


def run(source: str, event: dict = EVENT, **kwargs):
    return compile_expression(source, **kwargs)(event)


@pytest.mark.parametrize(
    "source,expected",
    [
        ("data.discount_pct > 15", True),
        ("data.discount_pct > 15 or data.amount >= 1000000", True),
        ("data.discount_pct > 20 and data.amount >= 1000000", False),
        ("not data.flag", False),
        ("data.flag == true and data.flag == True", True),
        ("data.currency in ['CNY', 'USD']", True),
        ("data.currency not in ('CNY', 'USD')", False),
        ("'GTX Pro' in data.products", True),
        ("'Pro' in data.products[0]", True),
        ("data.products[1] == 'GTX Basic'", True),
        ('data["from"] == "lead"', True),
        ("data.competitor.name == 'Rival'", True),
        ("900 < data.competitor.price <= 990", True),
        ("1 < 2 < 3 > 10", False),
        ("data.amount * (100 - data.discount_pct) / 100 > 1000000", True),
        ("data.amount % 7", Decimal("1200000.00") % 7),
        ("-data.discount_pct < -16", True),
        ("len(data.products) == 2", True),
        ("lower(data.currency) == 'cny'", True),
        ("abs(-3) == 3", True),
        ("min(data.discount_pct, 10) == 10 and max(1, 2, 3) == 3", True),
        ("exists(data.competitor.name) and not exists(data.competitor.product)", True),
        ("exists(customer)", True),
        ("type == 'quote.issued' and rep == 'SH01-007' and deal == 'd1'", True),
        ("customer != null", True),
        ("data.discount_pct == 16.5", True),
        ("0.1 + 0.2 == 0.3", True),
        ("[1, data.flag] == (1, true)", True),
        ("null", None),
        ("'text'", "text"),
        ("(\n  data.flag\n  and data.amount > 5\n)", True),
    ],
)
def test_allowed_forms_evaluate_like_python(source, expected):
    assert run(source) == expected


@pytest.mark.parametrize(
    "source,problem",
    [
        ("__import__('os')", "only these functions can be called"),
        ("open('x')", "only these functions can be called"),
        ("eval('1')", "only these functions can be called"),
        ("data.amount.bit_length()", "only these functions can be called"),
        ("().__class__", "start with _"),
        ("().count", "only field paths below data have parts"),
        ("data.__class__", "start with _"),
        ("data['__class__']", "start with _"),
        ("data['_secret']", "start with _"),
        ("data['']", "must not be empty"),
        ("data[data.currency]", "a subscript takes a constant"),
        ("data.products[0:1]", "a subscript takes a constant"),
        ("__builtins__", "names starting with _"),
        ("lambda: 1", "lambda is not allowed"),
        ("(lambda: 1)()", "only these functions can be called"),
        ("[x for x in data.products]", "comprehensions are not allowed"),
        ("{x for x in data.products}", "comprehensions are not allowed"),
        ("any(x for x in data.products)", "only these functions"),
        ("(x := 1)", "assignment (:=) is not allowed"),
        ("f'{data.amount}'", "f-strings are not allowed"),
        ("1 if data.flag else 2", "conditional expressions"),
        ("{'a': 1}", "dict literals are not allowed"),
        ("{1, 2}", "set literals are not allowed"),
        ("2 ** 100", "only + - * / % are allowed"),
        ("7 // 2", "only + - * / % are allowed"),
        ("1 << 3", "only + - * / % are allowed"),
        ("~1", "only not and unary -"),
        ("'a' * 3", "arithmetic is on numbers"),
        ("data.amount is None", "use == null"),
        ("len(*data.products)", "* unpacking is not allowed"),
        ("len(x=1)", "takes no keyword arguments"),
        ("len(1, 2)", "takes 1 argument"),
        ("max(1)", "takes at least 2"),
        ("exists(1)", "exists() takes a field path"),
        ("len", "len is a function"),
        ("dta.amount > 1", "only field paths below data have parts"),
        ("amount > 1", "unknown name 'amount'"),
        ("rep.name", "rep has no parts"),
        ("b'bytes'", "only numbers, text, true, false and null"),
        ("...", "only numbers, text, true, false and null"),
        ("1e999 > 1", "too large"),
        ("data.amount in 5", "needs a list or text"),
        ("data.amount >", "syntax error"),
        ("data.amount = 5", "syntax error"),
        ("", "non-empty"),
        ("   ", "non-empty"),
    ],
)
def test_forbidden_forms_are_refused_with_a_clear_message(source, problem):
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source)
    assert problem in str(caught.value)


def test_a_condition_that_is_not_text_is_refused():
    with pytest.raises(ExpressionError, match="non-empty text"):
        compile_expression(42)


def test_overlong_and_overdeep_conditions_are_refused():
    with pytest.raises(ExpressionError, match="at most"):
        compile_expression("1 + " * 1000 + "1")
    with pytest.raises(ExpressionError, match="nests too deeply"):
        compile_expression("-" * 100 + "1")
    with pytest.raises(ExpressionError):
        compile_expression("(" * 300 + "1" + ")" * 300)


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
@pytest.mark.parametrize("missing", ["data.nothing", "data.competitor.nothing.deeper", "null"])
def test_ordering_against_a_missing_value_is_false_in_either_direction(op, missing):
    assert run(f"{missing} {op} 15") is False
    assert run(f"15 {op} {missing}") is False
    assert run(f"not ({missing} {op} 15)") is True


def test_missing_values_are_none_through_paths_arithmetic_and_functions():
    assert run("data.nothing") is None
    assert run("data.products[9]") is None
    assert run("data.currency.deeper") is None
    assert run("data.products.name") is None
    assert run("data.nothing + 1") is None
    assert run("-data.nothing") is None
    assert run("data.amount / 0") is None
    assert run("len(data.nothing)") is None
    assert run("lower(data.amount)") is None
    assert run("max(data.nothing, 1)") is None
    assert run("data.nothing == null") is True
    assert run("data.nothing != 15") is True
    assert run("data.nothing in [1, 2]") is False
    assert run("1 in data.nothing") is False
    assert run("1 not in data.nothing") is False
    assert run("data.currency > 5") is False  # text against a number
    assert run("data.amount > 5", {"data": None}) is False
    assert run("data.amount > 5", {}) is False


@pytest.mark.parametrize(
    "value",
    [Decimal("16.50"), 16.5, 16.50000, "16.50", "16.5", Decimal("16.5000")],
)
def test_decimals_floats_ints_and_numeric_text_compare_by_value(value):
    event = {"data": {"x": value}}
    assert run("data.x > 16", event) is True
    assert run("data.x == 16.5", event) is True
    assert run("data.x >= 16.5 and data.x < 17", event) is True
    assert run("data.x in [16.5, 17]", event) is True
    assert run("data.x * 2 == 33", event) is True


def test_a_json_float_equals_the_decimal_it_was_written_as():
    assert run("data.x == 0.1", {"data": {"x": 0.1}}) is True
    assert run("data.x >= 0.1", {"data": {"x": Decimal("0.10")}}) is True
    assert run("data.x == data.y", {"data": {"x": 0.1, "y": Decimal("0.10")}}) is True
    assert run("data.x + data.y", {"data": {"x": 0.1, "y": Decimal("0.2")}}) == Decimal("0.3")


def test_text_that_is_not_a_number_never_equals_one():
    assert run("data.x == 5", {"data": {"x": "five"}}) is False
    assert run("data.x in [5, 6]", {"data": {"x": "5"}}) is True
    assert run("data.x in [5, 6]", {"data": {"x": "NaN"}}) is False
    assert run("data.x > 5", {"data": {"x": "Infinity"}}) is False


def test_definitions_are_used_by_name():
    ready = compile_expression("data.score >= 60")
    test = compile_expression(
        "sales_ready and data.source == 'web'", definitions={"sales_ready": ready}
    )
    assert test({"data": {"score": 60, "source": "web"}}) is True
    assert test({"data": {"score": 59, "source": "web"}}) is False


def test_path_checks_reject_unknown_fields_with_their_reason():
    def check(path):
        return schema_error(path, ["quote.issued"])

    assert compile_expression("data.discount_pct > 15", check_path=check)
    assert compile_expression("data.competitor.price > 1", check_path=check)
    assert compile_expression("exists(data.products[0])", check_path=check)
    with pytest.raises(ExpressionError, match="data.discount is not a field of quote.issued"):
        compile_expression("data.discount > 15", check_path=check)
    with pytest.raises(ExpressionError, match="not a field"):
        compile_expression("data.products.name == 'x'", check_path=check)
    with pytest.raises(ExpressionError, match="not a field"):
        compile_expression("exists(data.competitor.colour)", check_path=check)


def test_constant_parts_are_folded_at_compile_time():
    assert compile_expression("1 + 2 * 3 == 7")({}) is True
    assert compile_expression("not (2 > 1)")({}) is False
    assert compile_expression("lower('AB') in ['ab']")({}) is True


@given(
    value=st.one_of(
        st.none(),
        st.integers(-1000, 1000),
        st.decimals(-1000, 1000, places=2),
        st.floats(-1000, 1000),
        st.text(max_size=5),
        st.booleans(),
        st.lists(st.integers(), max_size=2),
    ),
    bound=st.integers(-1000, 1000),
    op=st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
)
def test_comparisons_never_raise_and_agree_with_python_on_numbers(value, bound, op):
    result = run(f"data.x {op} {bound}", {"data": {"x": value}})
    assert isinstance(result, bool)
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        assert result == eval(f"value {op} bound")  # the oracle: plain Python on numbers
    if value is None and op not in ("==", "!="):
        assert result is False
