"""What compiled conditions do at run time: None-safe comparisons, arithmetic and functions.

Numbers may arrive as ``int``, ``float``, ``Decimal`` (marshmallow) or numeric
text (JSON that carried a ``Decimal`` as a string): they compare and add by
value. A float next to a ``Decimal`` becomes the ``Decimal`` of its shortest
repr, so ``0.1`` from JSON equals ``Decimal("0.10")``. Ordering with ``None``
or with values of unrelated types is false; arithmetic on them is ``None``.
Nothing here raises on data.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.playbook.paths import is_present

NUMERIC = (int, float, Decimal, bool)


def as_number(value: Any) -> Any:
    """Return a number as is, numeric text as a ``Decimal``, anything else as ``None``."""
    kind = type(value)
    if kind in NUMERIC:
        return value
    if kind is str:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def align(a: Any, b: Any) -> tuple[Any, Any]:
    """Bring two values of different types to comparable ones where that makes sense."""
    ta, tb = type(a), type(b)
    if ta is float and tb is Decimal:
        return Decimal(repr(a)), b
    if tb is float and ta is Decimal:
        return a, Decimal(repr(b))
    if ta is str and tb in NUMERIC:
        return as_number(a), b
    if tb is str and ta in NUMERIC:
        return a, as_number(b)
    return a, b


def order(test: Callable[[Any, Any], bool], a: Any, b: Any) -> bool:
    """Apply ``<``-like ``test``; false when either side is ``None`` or they don't compare."""
    if type(a) is not type(b):
        a, b = align(a, b)
    if a is None or b is None:
        return False
    try:
        return bool(test(a, b))
    except (TypeError, ArithmeticError):
        return False


def equal(a: Any, b: Any) -> bool:
    """Compare by value: ``Decimal("15.00")``, ``15``, ``15.0`` and ``"15"`` are equal."""
    if a == b:
        return True
    if type(a) is type(b):
        return False
    a, b = align(a, b)
    return a is not None and a == b


def not_equal(a: Any, b: Any) -> bool:
    """Negate ``equal``."""
    return not equal(a, b)


def member(item: Any, container: Any) -> bool:
    """Tell whether ``item`` is in a list (by value), a text or a mapping's keys."""
    if container is None:
        return False
    if isinstance(container, list | tuple):
        return any(equal(item, x) for x in container)
    try:
        return item in container
    except TypeError:
        return False


def not_member(item: Any, container: Any) -> bool:
    """Negate ``member``; false too when there is no container at all."""
    return container is not None and not member(item, container)


def _ordering(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        return order(test, a, b)

    return compare


TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "==": equal,
    "!=": not_equal,
    "<": _ordering(operator.lt),
    "<=": _ordering(operator.le),
    ">": _ordering(operator.gt),
    ">=": _ordering(operator.ge),
    "in": member,
    "not in": not_member,
}
ORDERINGS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def arith(op: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    """Apply ``+ - * / %`` to two numbers; ``None`` if either is not a number or on x/0."""
    a, b = as_number(a), as_number(b)
    if a is None or b is None:
        return None
    if type(a) is not type(b):
        a, b = align(a, b)
    try:
        return op(a, b)
    except (TypeError, ArithmeticError):
        return None


ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
}


def negate(value: Any) -> Any:
    """Return ``-value`` for a number, else ``None``."""
    number = as_number(value)
    return None if number is None else -number


def length(value: Any) -> Any:
    """Return the length of a text, list or mapping, else ``None``."""
    try:
        return len(value)
    except TypeError:
        return None


def lower(value: Any) -> Any:
    """Return text in lower case, else ``None``."""
    return value.lower() if isinstance(value, str) else None


def absolute(value: Any) -> Any:
    """Return the absolute value of a number, else ``None``."""
    number = as_number(value)
    return None if number is None else abs(number)


def _extreme(pick: Callable[..., Any]) -> Callable[..., Any]:
    def extreme(*values: Any) -> Any:
        numbers = [as_number(v) for v in values]
        if any(n is None for n in numbers):
            return None
        try:
            return pick(numbers)
        except (TypeError, ArithmeticError):
            return None

    return extreme


# name -> (function, fewest arguments, most arguments or None)
FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "len": (length, 1, 1),
    "lower": (lower, 1, 1),
    "abs": (absolute, 1, 1),
    "min": (_extreme(min), 2, None),
    "max": (_extreme(max), 2, None),
    "exists": (is_present, 1, 1),
}
