"""Read playbook YAML into plain data, remembering the line of every key and list item.

Scalars are typed the YAML 1.2 way: only ``true``/``false`` are booleans and
only plain decimal numbers are numbers, so ``NO`` (a unit code), ``18:00`` and
``2026-10-01`` stay text instead of turning into ``False``, ``1080`` and a date.
Anchors and aliases are refused (they would let a small file expand hugely),
and so are keys given twice (YAML would silently keep the last).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from shared.playbook.errors import PlaybookError

MAX_CHARS = 1_000_000
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_RETYPED = {_BOOL, _INT, _FLOAT, "tag:yaml.org,2002:timestamp"}

Lines = dict[tuple[Any, ...], int]


class _Loader(yaml.SafeLoader):
    """A safe loader with YAML 1.2 core scalars."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in _RETYPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), None)
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?[0-9]+$"), None)
_Loader.add_implicit_resolver(
    _FLOAT, re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"), None
)
_Loader.add_constructor(_BOOL, lambda loader, node: node.value.lower() == "true")
_Loader.add_constructor(_INT, lambda loader, node: int(node.value))
_Loader.add_constructor(_FLOAT, lambda loader, node: float(node.value))


class _Refused(Exception):
    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.line = node.start_mark.line + 1


def read_yaml(text: str) -> tuple[Any, Lines]:
    """Return ``(data, lines)``: ``lines`` maps key paths (``("rules", 2, "id")``) to lines."""
    if not isinstance(text, str):
        raise PlaybookError("a playbook must be text", [_error(None, "a playbook must be text")])
    if len(text) > MAX_CHARS:
        message = f"a playbook must be at most {MAX_CHARS} characters"
        raise PlaybookError(message, [_error(None, message)])
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {(): 1}
        lines: Lines = {(): node.start_mark.line + 1}
        _walk(node, (), lines, set())
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "not valid YAML"
        line = mark.line + 1 if mark else None
        raise PlaybookError("the playbook is not valid YAML", [_error(line, problem)]) from None
    except yaml.YAMLError as exc:
        raise PlaybookError("the playbook is not valid YAML", [_error(None, str(exc))]) from None
    except _Refused as exc:
        raise PlaybookError(
            "the playbook is not valid YAML", [_error(exc.line, str(exc))]
        ) from None
    except RecursionError:  # lists or mappings nested deeper than the parser goes
        message = "nested too deeply"
        raise PlaybookError("the playbook is not valid YAML", [_error(None, message)]) from None
    finally:
        loader.dispose()


def _walk(node: yaml.Node, path: tuple[Any, ...], lines: Lines, seen: set[int]) -> None:
    if id(node) in seen:
        raise _Refused(node, "anchors and aliases (& and *) are not supported")
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[Any] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused(key_node, "keys must be plain names")
            key = int(key_node.value) if key_node.tag == _INT else key_node.value
            if key in keys:
                raise _Refused(key_node, f"the key {key!r} is given twice")
            keys.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _walk(item, (*path, i), lines, seen)


def _error(line: int | None, message: str) -> dict[str, Any]:
    return {"path": "", "line": line, "message": message}
