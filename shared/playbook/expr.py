"""Compile playbook conditions into Python closures over a whitelist of ``ast`` forms.

Why our own: ``eval`` of HQ-authored text is code execution however it is
fenced in; CEL or json-logic would be one more dependency on every branch
machine, and json-logic is hard to write by hand in YAML. Here a condition is
parsed once with ``ast.parse``, every node is checked against the whitelist,
and each node becomes a small closure: no bytecode is ever made from the text,
and a simple comparison evaluates in well under a microsecond.

The language: ``and or not``; ``== != < <= > >= in not in`` (chains too);
``+ - * / %`` on numbers and unary ``-``; numbers, text, ``true false null``
(or ``True False None``), lists; the event fields ``id type occurred_at rep
deal customer data`` and paths below ``data`` (``data.competitor.name``,
``data["from"]``, ``data.products[0]``); definitions by name; and the functions
``len lower exists abs min max``. A missing field reads as ``None``; ordering
against ``None`` is false (see ``shared.playbook.ops``).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from shared.playbook import ops
from shared.playbook.closures import (
    Compiled,
    Const,
    Fn,
    all_of,
    any_of,
    as_function,
    chain,
    compare,
    exists,
)
from shared.playbook.errors import ExpressionError
from shared.playbook.paths import EVENT_FIELDS, Path, make_getter

PathCheck = Callable[[Path], "str | None"]

MAX_LENGTH = 2000
MAX_DEPTH = 40
CONSTANT_NAMES = {"true": True, "false": False, "null": None}
CONSTANT_TYPES = (bool, int, float, str, type(None))
_COMPARE = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_ARITHMETIC = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%"}
_FORBIDDEN = {
    "Lambda": "lambda is not allowed",
    "ListComp": "comprehensions are not allowed",
    "SetComp": "comprehensions are not allowed",
    "DictComp": "comprehensions are not allowed",
    "GeneratorExp": "comprehensions are not allowed",
    "NamedExpr": "assignment (:=) is not allowed",
    "JoinedStr": "f-strings are not allowed",
    "IfExp": "conditional expressions (x if c else y) are not allowed",
    "Dict": "dict literals are not allowed",
    "Set": "set literals are not allowed; use a list",
    "Starred": "* unpacking is not allowed",
    "Slice": "slices are not allowed",
}


def compile_expression(
    source: str,
    *,
    definitions: Mapping[str, Fn] | None = None,
    check_path: PathCheck | None = None,
) -> Fn:
    """Compile a condition to ``fn(event) -> value``; raise ``ExpressionError`` if refused.

    ``definitions`` maps names usable in the condition to compiled functions;
    ``check_path`` returns why a ``data`` path is unknown (or ``None`` if it is fine).
    """
    text, tree = _parse(source)
    return as_function(_Compiler(text, definitions or {}, check_path).visit(tree.body, 0))


def _parse(source: Any) -> tuple[str, ast.Expression]:
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("a condition must be non-empty text")
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"a condition must be at most {MAX_LENGTH} characters")
    # Parentheses let a condition span lines (YAML block scalars) without backslashes.
    text = f"(\n{source.strip()}\n)"
    try:
        return text, ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg}{_where(source, exc)}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError("the condition is too complex to read") from None


def _where(source: str, exc: SyntaxError) -> str:
    lines = source.strip().split("\n")
    line = (exc.lineno or 0) - 1  # the text starts with "(\n"
    if not 1 <= line <= len(lines) or not exc.offset:
        return " at the end of the condition"
    if len(lines) == 1:
        return f" at column {exc.offset}"
    return f" at line {line}, column {exc.offset}"


class _Compiler:
    def __init__(self, text: str, definitions: Mapping[str, Fn], check: PathCheck | None):
        self.text = text
        self.definitions = definitions
        self.check = check

    def error(self, node: ast.AST, message: str) -> ExpressionError:
        segment = ast.get_source_segment(self.text, node)
        return ExpressionError(f"{message}: {segment}" if segment else message)

    def visit(self, node: ast.AST, depth: int) -> Compiled:
        if depth > MAX_DEPTH:
            raise self.error(node, "the condition nests too deeply")
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            name = type(node).__name__
            raise self.error(node, _FORBIDDEN.get(name, f"{name} is not allowed in a condition"))
        return method(node, depth + 1)

    def visit_Constant(self, node: ast.Constant, depth: int) -> Compiled:
        value = node.value
        if not isinstance(value, CONSTANT_TYPES):
            raise self.error(node, "only numbers, text, true, false and null are constants")
        if isinstance(value, float):
            # Exact, like the Decimal amounts it is compared with.
            value = Decimal(repr(value))
            if not value.is_finite():
                raise self.error(node, "the number is too large")
        return Const(value)

    def visit_Name(self, node: ast.Name, depth: int) -> Compiled:
        name = node.id
        if name.startswith("_"):
            raise self.error(node, "names starting with _ are not allowed")
        if name in CONSTANT_NAMES:
            return Const(CONSTANT_NAMES[name])
        if name in EVENT_FIELDS:
            return make_getter((name,))
        definition = self.definitions.get(name)
        if definition is not None:
            return definition
        if name in ops.FUNCTIONS:
            raise self.error(node, f"{name} is a function: call it as {name}(...)")
        known = ", ".join([*EVENT_FIELDS, *self.definitions])
        raise self.error(node, f"unknown name {name!r} (known: {known})")

    def visit_Attribute(self, node: ast.Attribute, depth: int) -> Compiled:
        return make_getter(self.path(node))

    visit_Subscript = visit_Attribute

    def path(self, node: ast.AST) -> Path:
        """Return the steps of a field path, refusing anything that is not one."""
        steps: list[str | int] = []
        top = node
        while not isinstance(node, ast.Name):
            if isinstance(node, ast.Attribute):
                steps.append(self.key(node, node.attr))
            elif isinstance(node, ast.Subscript):
                steps.append(self.subscript(node))
            else:
                raise self.error(top, "only field paths below data have parts, like data.amount")
            node = node.value
        if node.id not in EVENT_FIELDS:
            raise self.error(top, "only field paths below data have parts, like data.amount")
        if node.id != "data":
            raise self.error(top, f"{node.id} has no parts: only paths below data do")
        path = ("data", *reversed(steps))
        problem = self.check(path) if self.check else None
        if problem:
            raise self.error(top, problem)
        return path

    def key(self, node: ast.AST, name: str) -> str:
        if not name or name.startswith("_"):
            raise self.error(node, "field names must not be empty or start with _")
        return name

    def subscript(self, node: ast.Subscript) -> str | int:
        index = node.slice
        if isinstance(index, ast.Constant) and type(index.value) is str:
            return self.key(node, index.value)
        if isinstance(index, ast.Constant) and type(index.value) is int:
            return index.value
        raise self.error(node, 'a subscript takes a constant: data["from"] or data.products[0]')

    def visit_BoolOp(self, node: ast.BoolOp, depth: int) -> Compiled:
        parts = [as_function(self.visit(v, depth)) for v in node.values]
        if isinstance(node.op, ast.And):
            if len(parts) == 2:
                a, b = parts
                return lambda event: a(event) and b(event)
            return all_of(parts)
        if len(parts) == 2:
            a, b = parts
            return lambda event: a(event) or b(event)
        return any_of(parts)

    def visit_UnaryOp(self, node: ast.UnaryOp, depth: int) -> Compiled:
        operand = self.visit(node.operand, depth)
        if isinstance(node.op, ast.Not):
            if isinstance(operand, Const):
                return Const(not operand.value)
            return lambda event: not operand(event)
        if isinstance(node.op, ast.USub):
            if isinstance(operand, Const):
                self.require_number(node.operand, operand)
                return Const(ops.negate(operand.value))
            return lambda event: ops.negate(operand(event))
        raise self.error(node, "only not and unary - are allowed")

    def require_number(self, node: ast.AST, compiled: Compiled) -> None:
        if isinstance(compiled, Const) and not isinstance(compiled.value, int | Decimal):
            raise self.error(node, "arithmetic is on numbers")

    def visit_BinOp(self, node: ast.BinOp, depth: int) -> Compiled:
        symbol = _ARITHMETIC.get(type(node.op))
        if symbol is None:
            raise self.error(node, "only + - * / % are allowed in arithmetic")
        op = ops.ARITHMETIC[symbol]
        left, right = self.visit(node.left, depth), self.visit(node.right, depth)
        self.require_number(node.left, left)
        self.require_number(node.right, right)
        if isinstance(left, Const) and isinstance(right, Const):
            return Const(ops.arith(op, left.value, right.value))
        a, b = as_function(left), as_function(right)
        return lambda event: ops.arith(op, a(event), b(event))

    def visit_Compare(self, node: ast.Compare, depth: int) -> Compiled:
        symbols = []
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise self.error(node, "use == null and != null instead of is / is not")
            symbols.append(_COMPARE[type(op)])
        operands = [self.visit(node.left, depth)]
        for symbol, right in zip(symbols, node.comparators, strict=True):
            operands.append(self.visit(right, depth))
            if symbol in ("in", "not in") and isinstance(operands[-1], Const):
                if not isinstance(operands[-1].value, tuple | str):
                    raise self.error(right, f"{symbol} needs a list or text on its right")
        if len(symbols) == 1:
            return compare(symbols[0], operands[0], operands[1])
        return chain(symbols, [as_function(o) for o in operands])

    def visit_Call(self, node: ast.Call, depth: int) -> Compiled:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in ops.FUNCTIONS:
            allowed = ", ".join(ops.FUNCTIONS)
            raise self.error(node, f"only these functions can be called: {allowed}")
        function, fewest, most = ops.FUNCTIONS[name]
        if node.keywords:
            raise self.error(node, f"{name}() takes no keyword arguments")
        count = len(node.args)
        if count < fewest or (most is not None and count > most):
            wanted = f"{fewest}" if fewest == most else f"at least {fewest}"
            raise self.error(node, f"{name}() takes {wanted} argument(s)")
        if name == "exists":
            return exists(self.field(node.args[0], depth))
        args = [self.visit(a, depth) for a in node.args]
        if all(isinstance(a, Const) for a in args):
            return Const(function(*(a.value for a in args)))
        fns = [as_function(a) for a in args]
        if len(fns) == 1:
            (only,) = fns
            return lambda event: function(only(event))
        return lambda event: function(*[f(event) for f in fns])

    def field(self, node: ast.AST, depth: int) -> Fn:
        if isinstance(node, ast.Name) and node.id in EVENT_FIELDS:
            return make_getter((node.id,))
        if isinstance(node, ast.Attribute | ast.Subscript):
            return make_getter(self.path(node))
        raise self.error(node, "exists() takes a field path such as data.loss_reason")

    def visit_List(self, node: ast.List | ast.Tuple, depth: int) -> Compiled:
        items = [self.visit(e, depth) for e in node.elts]
        if all(isinstance(i, Const) for i in items):
            return Const(tuple(i.value for i in items))
        fns = [as_function(i) for i in items]
        return lambda event: tuple(f(event) for f in fns)

    visit_Tuple = visit_List
