"""The closures a compiled condition is made of: folded constants, logic, comparisons.

Comparisons against a constant get their own closures, since they are most of
what playbooks contain: an ``int`` or text constant compares with one ``try``,
a list of constants becomes a ``frozenset`` lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.playbook import ops

Fn = Callable[[Mapping[str, Any]], Any]


class Const:
    """A value known when compiling (folded instead of evaluated per event)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


Compiled = Fn | Const


def as_function(compiled: Compiled) -> Fn:
    """Return a compiled node as a function of the event."""
    if isinstance(compiled, Const):
        value = compiled.value
        return lambda event: value
    return compiled


def all_of(parts: list[Fn]) -> Fn:
    """Return ``a and b and …`` over ``parts`` (the value of the last part tried)."""

    def check(event: Mapping[str, Any]) -> Any:
        value = True
        for part in parts:
            value = part(event)
            if not value:
                return value
        return value

    return check


def any_of(parts: list[Fn]) -> Fn:
    """Return ``a or b or …`` over ``parts`` (the value of the last part tried)."""

    def check(event: Mapping[str, Any]) -> Any:
        value = False
        for part in parts:
            value = part(event)
            if value:
                return value
        return value

    return check


def exists(get: Fn) -> Fn:
    """Return whether the field ``get`` reads is filled in."""
    present = ops.FUNCTIONS["exists"][0]
    return lambda event: present(get(event))


def compare(symbol: str, left: Compiled, right: Compiled) -> Compiled:
    """Return ``left <symbol> right``, specialised when ``right`` is a constant."""
    test = ops.TESTS[symbol]
    if isinstance(left, Const) and isinstance(right, Const):
        return Const(test(left.value, right.value))
    if not isinstance(right, Const) or isinstance(left, Const):
        a, b = as_function(left), as_function(right)
        return lambda event: test(a(event), b(event))
    value = right.value
    if symbol in ops.ORDERINGS and type(value) in (int, str):
        return _order_constant(ops.ORDERINGS[symbol], left, value)
    if symbol in ("in", "not in") and isinstance(value, tuple):
        inside = _in_constant(left, value)
        return inside if symbol == "in" else (lambda event: not inside(event))
    return lambda event: test(left(event), value)


def _order_constant(op: Callable[[Any, Any], bool], get: Fn, value: int | str) -> Fn:
    # int and text constants compare exactly with int, float and Decimal values:
    # only None, numeric text and unrelated types need the slow path.
    def order_constant(event: Mapping[str, Any]) -> bool:
        found = get(event)
        try:
            return op(found, value)
        except (TypeError, ArithmeticError):
            return ops.order(op, found, value)

    return order_constant


def _in_constant(get: Fn, values: tuple) -> Fn:
    if not all(type(v) in (str, int, bool, type(None)) for v in values):
        return lambda event: ops.member(get(event), values)
    lookup = frozenset(values)
    numbers = any(type(v) is int for v in values)

    def in_constant(event: Mapping[str, Any]) -> bool:
        found = get(event)
        try:
            if found in lookup:
                return True
        except TypeError:  # unhashable: a list or mapping is never in a list of constants
            return False
        return numbers and type(found) is str and ops.member(found, values)

    return in_constant


def chain(symbols: list[str], operands: list[Fn]) -> Fn:
    """Return ``a < b <= c …``: each operand read once, false at the first failing pair."""
    first = operands[0]
    pairs = [(ops.TESTS[s], f) for s, f in zip(symbols, operands[1:], strict=True)]

    def check(event: Mapping[str, Any]) -> bool:
        a = first(event)
        for test, right in pairs:
            b = right(event)
            if not test(a, b):
                return False
            a = b
        return True

    return check
