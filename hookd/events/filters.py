"""Hook filters: a YAML mapping compiled once, at config load, into a predicate over payloads.

    queue_id: 7                          # equality
    channel: {in: [call, chat]}          # a list alone is shorthand for `in`
    variables.priority: {regex: "^high$"}
    talk_sec: {gte: 30, lt: 60}          # every operator must hold
    any: [{queue_id: 7}, {queue_id: 8}]  # combinators: any, all, not

Compilation raises SpecError located by a path into the spec; a compiled predicate never raises
on a JSON-like payload.
"""

from __future__ import annotations

import enum
import functools
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from hookd.errors import SpecError

__all__ = ["MISSING", "OPERATORS", "Predicate", "compile_filter", "equality_key", "get_path",
           "required_equalities"]

Predicate = Callable[[Mapping[str, Any]], bool]

OPERATORS: Final = ("eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "regex", "exists")
_COMBINATORS: Final = ("any", "all", "not")
_SCALARS: Final = (str, int, float, bool, type(None))
_MAPPINGS: Final = (dict, Mapping)  # dict first: payloads are dicts, and the ABC check is slow

_Test = Callable[[Any], bool]  # applied to the value found at a path, possibly MISSING
_Path = tuple[str | int, ...]  # locates a key within the filter spec, for SpecError
_Step = tuple[str, int | None]  # a path segment, and its value as a list index if it is one

_ORDERINGS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING
"""What get_path returns when the path is absent (a present null is None)."""


def get_path(obj: Any, dotted: str) -> Any:
    """The value at a dotted path ("a.b.0.c"), or MISSING.

    Descends into mappings by key and into lists by integer index. A top-level key equal to
    the whole dotted string wins over descending.
    """
    return _lookup(obj, dotted, _split(dotted))


def compile_filter(spec: Mapping[str, Any] | None) -> Predicate:
    """Compile a filter spec; None or an empty mapping matches every payload."""
    if spec is None:
        return _always
    predicate = _compile_mapping(spec, ())
    equalities = _top_equalities(spec)
    if equalities and predicate is not _always:
        predicate._hookd_equalities = equalities  # type: ignore[attr-defined]
    return predicate


def required_equalities(predicate: Predicate) -> tuple[tuple[str, Any], ...]:
    """(path, value) pairs that every payload the predicate accepts has (`field: value` or
    `field: {eq: value}` at the top of the filter), so an index may look them up."""
    found: tuple[tuple[str, Any], ...] = getattr(predicate, "_hookd_equalities", ())
    return found


def equality_key(value: Any) -> Any:
    """A dict key that two values share whenever a filter's equality holds between them
    (7 and 7.0 do, True and 1 do not); None for values no equality can hold for."""
    if value is MISSING or isinstance(value, list | dict):
        return None
    try:
        hash(value)
    except TypeError:
        return None
    return (isinstance(value, bool), value)


def _top_equalities(spec: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    out = []
    for key, value in spec.items():
        if not isinstance(key, str) or key in _COMBINATORS:
            continue
        if isinstance(value, Mapping) and len(value) == 1 and "eq" in value:
            value = value["eq"]
        if isinstance(value, _SCALARS):
            out.append((key, value))
    return tuple(out)


# --- paths -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2048)  # paths come from the config: few, and used per event
def _split(dotted: str) -> tuple[_Step, ...]:
    return tuple(
        (part, int(part) if part.isascii() and part.isdigit() else None)
        for part in dotted.split(".")
    )


def _lookup(obj: Any, dotted: str, steps: tuple[_Step, ...]) -> Any:
    if isinstance(obj, _MAPPINGS) and dotted in obj:
        return obj[dotted]
    current = obj
    for key, index in steps:
        if isinstance(current, _MAPPINGS):
            current = current.get(key, MISSING)
            if current is MISSING:
                return MISSING
        elif isinstance(current, list | tuple) and index is not None and index < len(current):
            current = current[index]
        else:
            return MISSING
    return current


# --- structure ---------------------------------------------------------------------------------


def _compile_mapping(spec: Any, path: _Path) -> Predicate:
    if not isinstance(spec, Mapping):
        raise SpecError(f"a filter must be a mapping, got {_kind(spec)}", path)
    predicates: list[Predicate] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            message = f"filter keys must be strings, got {_describe(key)} (quote the key)"
            raise SpecError(message, (*path, str(key)))
        if key in _COMBINATORS:
            predicates.append(_compile_combinator(key, value, (*path, key)))
        else:
            predicates.append(_compile_field(key, value, (*path, key)))
    return _all_of(predicates)


def _compile_combinator(name: str, value: Any, path: _Path) -> Predicate:
    if name == "not":
        if not isinstance(value, Mapping) or not value:
            raise SpecError(f"'not' needs a non-empty filter mapping, got {_describe(value)}", path)
        inner = _compile_mapping(value, path)
        return lambda payload: not inner(payload)
    if not isinstance(value, list) or not value:
        raise SpecError(f"'{name}' needs a non-empty list of filters, got {_describe(value)}", path)
    predicates = [_compile_mapping(item, (*path, i)) for i, item in enumerate(value)]
    if name == "all":
        return _all_of(predicates)
    return lambda payload: any(predicate(payload) for predicate in predicates)


def _compile_field(dotted: str, value: Any, path: _Path) -> Predicate:
    if not dotted or "" in dotted.split("."):
        raise SpecError(f"invalid path {dotted!r}: empty segment", path)
    test = _compile_test(value, path)
    steps = _split(dotted)
    return lambda payload: test(_lookup(payload, dotted, steps))


def _compile_test(value: Any, path: _Path) -> _Test:
    if isinstance(value, _SCALARS):
        return _compile_operator("eq", value, path)
    if isinstance(value, list):
        return _compile_operator("in", value, path)
    if isinstance(value, Mapping):
        if not value:
            raise SpecError("expected at least one operator", path)
        for op in value:
            if op not in OPERATORS:
                expected = ", ".join(OPERATORS)
                message = f"unknown operator {str(op)!r} (expected one of {expected})"
                raise SpecError(message, (*path, str(op)))
        tests = [_compile_operator(op, operand, (*path, op)) for op, operand in value.items()]
        if len(tests) == 1:
            return tests[0]
        return lambda found: all(test(found) for test in tests)
    raise SpecError(
        f"expected a string, number, boolean, null, list or operator mapping, got {_kind(value)}"
        " (quote it to compare as a string)",
        path,
    )


# --- operators ---------------------------------------------------------------------------------


def _compile_operator(op: str, operand: Any, path: _Path) -> _Test:
    """The test for one operator, which the caller has checked is in OPERATORS."""
    if op in ("eq", "ne"):
        expected = _scalar(operand, path, op)
        if op == "eq":
            return lambda found: _equal(found, expected)
        return lambda found: not _equal(found, expected)
    if op in ("in", "nin"):
        if not isinstance(operand, list):
            raise SpecError(f"'{op}' needs a list, got {_describe(operand)}", path)
        keys = frozenset(equality_key(c) for c in _scalar_list(operand, path))
        if op == "in":  # one set lookup, with _equal's rules (7 is 7.0, True is not 1)
            return lambda found: equality_key(found) in keys
        return lambda found: equality_key(found) not in keys
    if op in _ORDERINGS:
        return _ordering(_ORDERINGS[op], operand, path, op)
    if op == "regex":
        return _regex(operand, path)
    assert op == "exists", op
    if not isinstance(operand, bool):
        raise SpecError(f"'exists' needs true or false, got {_describe(operand)}", path)
    return lambda found: (found is not MISSING) is operand


def _ordering(compare: Callable[[Any, Any], bool], bound: Any, path: _Path, op: str) -> _Test:
    if isinstance(bound, str):
        return lambda found: isinstance(found, str) and compare(found, bound)
    if _is_number(bound):
        return lambda found: _is_number(found) and compare(found, bound)
    raise SpecError(f"'{op}' needs a number or a string, got {_describe(bound)}", path)


def _regex(operand: Any, path: _Path) -> _Test:
    if not isinstance(operand, str):
        raise SpecError(f"'regex' needs a string, got {_describe(operand)}", path)
    try:
        pattern = re.compile(operand)
    except (re.error, OverflowError, RecursionError) as exc:
        raise SpecError(f"invalid regex {operand!r}: {exc}", path) from None
    return lambda found: isinstance(found, str) and pattern.search(found) is not None


# --- values ------------------------------------------------------------------------------------


def _equal(found: Any, expected: Any) -> bool:
    """Python ==, except that a bool never equals a number (True != 1)."""
    if found is MISSING or isinstance(found, bool) != isinstance(expected, bool):
        return False
    return bool(found == expected)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar(operand: Any, path: _Path, op: str) -> Any:
    if not isinstance(operand, _SCALARS):
        hint = "; use 'in' to match one of several values" if isinstance(operand, list) else ""
        raise SpecError(
            f"'{op}' needs a string, number, boolean or null, got {_describe(operand)}{hint}", path
        )
    return operand


def _scalar_list(items: Sequence[Any], path: _Path) -> tuple[Any, ...]:
    for i, item in enumerate(items):
        if not isinstance(item, _SCALARS):
            raise SpecError(
                f"list items must be strings, numbers, booleans or null, got {_describe(item)}",
                (*path, i),
            )
    return tuple(items)


def _all_of(predicates: list[Predicate]) -> Predicate:
    if not predicates:
        return _always
    if len(predicates) == 1:
        return predicates[0]
    return lambda payload: all(predicate(payload) for predicate in predicates)


def _always(payload: Mapping[str, Any]) -> bool:
    return True


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return f"{_kind(value)} {text if len(text) <= 40 else text[:37] + '...'}"
