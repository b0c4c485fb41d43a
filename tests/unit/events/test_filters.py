from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given

from hookd.errors import SpecError
from hookd.events.filters import MISSING, OPERATORS, compile_filter, get_path

PAYLOAD: dict[str, Any] = {
    "queue_id": 7,
    "channel": "call",
    "talk_sec": 45,
    "ratio": 0.5,
    "agent": None,
    "flag": True,
    "one": 1,
    "zero": 0,
    "name": "Alice",
    "variables": {"priority": "high", "tags": ["vip", "emea"]},
    "legs": [{"number": "+4930123"}, {"number": "+4940999"}],
    "a.b": "literal",
    "a": {"b": "nested"},
}


def case(spec: Mapping[str, Any] | None, expected: bool, case_id: str) -> Any:
    return pytest.param(spec, expected, id=case_id)


MATCH_CASES = [
    # eq, explicit and by a scalar value
    case({"queue_id": 7}, True, "eq-int"),
    case({"queue_id": 8}, False, "eq-int-other"),
    case({"queue_id": 7.0}, True, "eq-int-vs-float"),
    case({"ratio": 0.5}, True, "eq-float"),
    case({"queue_id": "7"}, False, "eq-str-vs-int"),
    case({"channel": "call"}, True, "eq-str"),
    case({"channel": "Call"}, False, "eq-str-case-sensitive"),
    case({"channel": {"eq": "call"}}, True, "eq-explicit"),
    case({"flag": True}, True, "eq-bool"),
    case({"flag": 1}, False, "eq-bool-vs-int"),
    case({"flag": 1.0}, False, "eq-bool-vs-float"),
    case({"one": True}, False, "eq-int-vs-bool"),
    case({"zero": False}, False, "eq-zero-vs-false"),
    case({"agent": None}, True, "eq-null"),
    case({"missing": None}, False, "eq-null-missing"),
    case({"missing": 7}, False, "eq-missing"),
    case({"variables": {"eq": "high"}}, False, "eq-dict-value"),
    # ne
    case({"queue_id": {"ne": 8}}, True, "ne-true"),
    case({"queue_id": {"ne": 7}}, False, "ne-false"),
    case({"queue_id": {"ne": 7.0}}, False, "ne-int-vs-float"),
    case({"one": {"ne": True}}, True, "ne-int-vs-bool"),
    case({"flag": {"ne": 1}}, True, "ne-bool-vs-int"),
    case({"missing": {"ne": 1}}, True, "ne-missing"),
    case({"missing": {"ne": None}}, True, "ne-null-missing"),
    case({"agent": {"ne": None}}, False, "ne-null-present"),
    # in / nin
    case({"channel": {"in": ["call", "chat"]}}, True, "in-true"),
    case({"channel": {"in": ["email", "chat"]}}, False, "in-false"),
    case({"channel": ["call", "chat"]}, True, "in-shorthand-true"),
    case({"channel": ["email"]}, False, "in-shorthand-false"),
    case({"queue_id": {"in": [1, 7.0]}}, True, "in-int-vs-float"),
    case({"one": {"in": [True]}}, False, "in-int-vs-bool"),
    case({"flag": [1, 2]}, False, "in-bool-vs-int"),
    case({"agent": {"in": [None]}}, True, "in-null"),
    case({"missing": {"in": [None]}}, False, "in-missing"),
    case({"channel": {"in": []}}, False, "in-empty"),
    case({"channel": {"nin": ["email"]}}, True, "nin-true"),
    case({"channel": {"nin": ["email", "call"]}}, False, "nin-false"),
    case({"queue_id": {"nin": [7.0]}}, False, "nin-int-vs-float"),
    case({"one": {"nin": [True]}}, True, "nin-int-vs-bool"),
    case({"missing": {"nin": ["call"]}}, True, "nin-missing"),
    case({"channel": {"nin": []}}, True, "nin-empty"),
    # gt / gte / lt / lte on numbers
    case({"talk_sec": {"gt": 30}}, True, "gt-true"),
    case({"talk_sec": {"gt": 45}}, False, "gt-equal"),
    case({"talk_sec": {"gt": 44.5}}, True, "gt-int-vs-float"),
    case({"talk_sec": {"gte": 45}}, True, "gte-equal"),
    case({"talk_sec": {"gte": 45.0}}, True, "gte-equal-float"),
    case({"talk_sec": {"gte": 46}}, False, "gte-false"),
    case({"talk_sec": {"lt": 60}}, True, "lt-true"),
    case({"talk_sec": {"lt": 45}}, False, "lt-equal"),
    case({"talk_sec": {"lte": 45}}, True, "lte-equal"),
    case({"talk_sec": {"lte": 44}}, False, "lte-false"),
    case({"ratio": {"lt": 1}}, True, "lt-float-vs-int"),
    case({"talk_sec": {"gte": 30, "lt": 60}}, True, "range-inside"),
    case({"talk_sec": {"gte": 30, "lt": 40}}, False, "range-above"),
    case({"talk_sec": {"gte": 50, "lt": 60}}, False, "range-below"),
    # gt / gte / lt / lte on strings
    case({"name": {"gt": "Al"}}, True, "gt-str-true"),
    case({"name": {"lt": "Al"}}, False, "lt-str-false"),
    case({"name": {"lte": "Alice"}}, True, "lte-str-equal"),
    case({"name": {"gte": "Bob"}}, False, "gte-str-false"),
    # ordering never holds across types or on absent values
    case({"talk_sec": {"gt": "10"}}, False, "gt-int-vs-str"),
    case({"name": {"gt": 0}}, False, "gt-str-vs-int"),
    case({"flag": {"gt": 0}}, False, "gt-bool-not-number"),
    case({"flag": {"gte": 1}}, False, "gte-bool-not-number"),
    case({"agent": {"gt": 0}}, False, "gt-null"),
    case({"agent": {"lt": 0}}, False, "lt-null"),
    case({"missing": {"gt": 0}}, False, "gt-missing"),
    case({"missing": {"lte": 0}}, False, "lte-missing"),
    case({"variables": {"gt": 0}}, False, "gt-dict"),
    case({"legs": {"lt": "z"}}, False, "lt-list"),
    # regex
    case({"variables.priority": {"regex": "^high$"}}, True, "regex-true"),
    case({"variables.priority": {"regex": "^low$"}}, False, "regex-false"),
    case({"name": {"regex": "lic"}}, True, "regex-search-not-match"),
    case({"name": {"regex": "^alice$"}}, False, "regex-case-sensitive"),
    case({"name": {"regex": "(?i)^alice$"}}, True, "regex-inline-flag"),
    case({"queue_id": {"regex": "7"}}, False, "regex-int-value"),
    case({"agent": {"regex": ".*"}}, False, "regex-null-value"),
    case({"missing": {"regex": ".*"}}, False, "regex-missing"),
    # exists
    case({"channel": {"exists": True}}, True, "exists-true-present"),
    case({"agent": {"exists": True}}, True, "exists-true-null"),
    case({"missing": {"exists": True}}, False, "exists-true-missing"),
    case({"missing": {"exists": False}}, True, "exists-false-missing"),
    case({"agent": {"exists": False}}, False, "exists-false-null"),
    case({"variables.priority": {"exists": True}}, True, "exists-nested"),
    case({"legs.5": {"exists": True}}, False, "exists-index-out-of-range"),
    # dotted paths and list indexes
    case({"variables.priority": "high"}, True, "path-nested"),
    case({"variables.tags.0": "vip"}, True, "path-list-index-0"),
    case({"variables.tags.1": "emea"}, True, "path-list-index-1"),
    case({"variables.tags.0": "emea"}, False, "path-list-index-other"),
    case({"legs.1.number": "+4940999"}, True, "path-into-list-of-dicts"),
    case({"legs.-1.number": {"exists": True}}, False, "path-negative-index"),
    case({"legs.x": {"exists": True}}, False, "path-non-int-index"),
    case({"name.0": {"exists": True}}, False, "path-into-string"),
    case({"agent.id": {"exists": True}}, False, "path-into-null"),
    case({"a.b": "literal"}, True, "path-literal-key-wins"),
    case({"a.b": "nested"}, False, "path-literal-key-shadows"),
    case({"a": {"exists": True}, "a.b": {"ne": "nested"}}, True, "path-literal-and-nested"),
    # several keys: all must hold
    case({"queue_id": 7, "channel": "call"}, True, "and-true"),
    case({"queue_id": 7, "channel": "chat"}, False, "and-false"),
    # combinators
    case({"any": [{"queue_id": 8}, {"channel": "call"}]}, True, "any-one"),
    case({"any": [{"queue_id": 8}, {"channel": "chat"}]}, False, "any-none"),
    case({"all": [{"queue_id": 7}, {"channel": "call"}]}, True, "all-true"),
    case({"all": [{"queue_id": 7}, {"channel": "chat"}]}, False, "all-one-false"),
    case({"not": {"channel": "chat"}}, True, "not-true"),
    case({"not": {"channel": "call"}}, False, "not-false"),
    case({"not": {"queue_id": 7, "channel": "chat"}}, True, "not-of-conjunction"),
    case({"not": {"missing": {"exists": True}}}, True, "not-exists"),
    case({"queue_id": 7, "any": [{"channel": "chat"}, {"flag": 1}]}, False, "field-and-any"),
    case({"queue_id": 7, "any": [{"channel": "chat"}, {"flag": True}]}, True, "field-and-any-true"),
    case(
        {"any": [{"all": [{"queue_id": 7}, {"not": {"channel": "chat"}}]}, {"queue_id": 99}]},
        True,
        "nested-any-all-not",
    ),
    case(
        {"all": [{"any": [{"queue_id": 1}, {"queue_id": 2}]}, {"channel": "call"}]},
        False,
        "nested-all-any",
    ),
    case({"not": {"not": {"queue_id": 7}}}, True, "double-not"),
    case({"any": [{}]}, True, "any-of-empty-filter"),
    # empty filters match everything
    case(None, True, "none"),
    case({}, True, "empty"),
]


@pytest.mark.parametrize(("spec", "expected"), MATCH_CASES)
def test_compiled_filter(spec: Mapping[str, Any] | None, expected: bool) -> None:
    assert compile_filter(spec)(PAYLOAD) is expected


@pytest.mark.parametrize(
    ("obj", "dotted", "expected"),
    [
        pytest.param({"a": 1}, "a", 1, id="top"),
        pytest.param({"a": {"b": {"c": 2}}}, "a.b.c", 2, id="nested"),
        pytest.param({"a": None}, "a", None, id="null-is-present"),
        pytest.param({"a": None}, "a.b", MISSING, id="through-null"),
        pytest.param({}, "a", MISSING, id="absent"),
        pytest.param({"a": {"b": 1}}, "a.c", MISSING, id="absent-nested"),
        pytest.param({"a": [10, 20]}, "a.1", 20, id="list-index"),
        pytest.param({"a": [10, 20]}, "a.2", MISSING, id="list-out-of-range"),
        pytest.param({"a": [10, 20]}, "a.-1", MISSING, id="list-negative"),
        pytest.param({"a": [[1, 2], [3, 4]]}, "a.1.0", 3, id="list-of-lists"),
        pytest.param({"a": ({"b": 5},)}, "a.0.b", 5, id="tuple"),
        pytest.param({"a": {"0": "key"}}, "a.0", "key", id="digit-key-in-mapping"),
        pytest.param({"a": "text"}, "a.0", MISSING, id="string-not-indexed"),
        pytest.param([7, 8], "1", 8, id="top-level-list"),
        pytest.param({"a.b": 1, "a": {"b": 2}}, "a.b", 1, id="literal-key-preferred"),
        pytest.param({"a": {"b.c": 1}}, "a.b.c", MISSING, id="literal-only-at-top"),
    ],
)
def test_get_path(obj: Any, dotted: str, expected: Any) -> None:
    assert get_path(obj, dotted) == expected
    assert (get_path(obj, dotted) is MISSING) is (expected is MISSING)


def test_missing_repr() -> None:
    assert repr(MISSING) == "MISSING"


def test_unknown_operator_message() -> None:
    with pytest.raises(SpecError) as caught:
        compile_filter({"talk_sec": {"gtee": 30}})
    assert caught.value.message == (
        "unknown operator 'gtee' (expected one of eq, ne, in, nin, gt, gte, lt, lte, regex, exists)"
    )
    assert caught.value.path == ("talk_sec", "gtee")


ERROR_CASES = [
    pytest.param(["queue_id"], (), "a filter must be a mapping, got list", id="not-a-mapping"),
    pytest.param({1: "x"}, ("1",), "filter keys must be strings", id="non-str-key"),
    pytest.param({"": 1}, ("",), "empty segment", id="empty-path"),
    pytest.param({"a..b": 1}, ("a..b",), "empty segment", id="empty-path-segment"),
    pytest.param({"a.": 1}, ("a.",), "empty segment", id="trailing-dot"),
    pytest.param(
        {"x": datetime.date(2024, 1, 1)}, ("x",), "got date (quote it", id="unsupported-value"
    ),
    pytest.param({"talk_sec": {}}, ("talk_sec",), "at least one operator", id="no-operator"),
    pytest.param(
        {"talk_sec": {"gte": 30, "foo": 1}}, ("talk_sec", "foo"), "'foo'", id="mixed-operator"
    ),
    pytest.param(
        {"variables": {"priority": "high"}},
        ("variables", "priority"),
        "unknown operator 'priority'",
        id="nested-mapping",
    ),
    pytest.param(
        {"talk_sec": {"not": {"gte": 3}}}, ("talk_sec", "not"), "unknown operator 'not'", id="not"
    ),
    pytest.param({"x": {"eq": ["a"]}}, ("x", "eq"), "use 'in'", id="eq-list"),
    pytest.param({"x": {"ne": {"a": 1}}}, ("x", "ne"), "'ne' needs a string", id="ne-dict"),
    pytest.param({"x": {"in": "call"}}, ("x", "in"), "'in' needs a list", id="in-str"),
    pytest.param({"x": {"nin": 3}}, ("x", "nin"), "'nin' needs a list", id="nin-int"),
    pytest.param({"x": {"in": ["a", ["b"]]}}, ("x", "in", 1), "list items", id="in-nested-list"),
    pytest.param({"x": {"nin": [{"a": 1}]}}, ("x", "nin", 0), "list items", id="nin-dict-item"),
    pytest.param({"x": ["a", {"b": 1}]}, ("x", 1), "list items", id="shorthand-dict-item"),
    pytest.param({"x": {"gt": True}}, ("x", "gt"), "got bool True", id="gt-bool"),
    pytest.param({"x": {"gte": None}}, ("x", "gte"), "'gte' needs a number", id="gte-null"),
    pytest.param({"x": {"lt": [1]}}, ("x", "lt"), "'lt' needs a number", id="lt-list"),
    pytest.param({"x": {"lte": {"a": 1}}}, ("x", "lte"), "'lte' needs", id="lte-dict"),
    pytest.param({"x": {"regex": "("}}, ("x", "regex"), "invalid regex '('", id="regex-bad"),
    pytest.param({"x": {"regex": "a{99999999999}"}}, ("x", "regex"), "invalid", id="regex-huge"),
    pytest.param({"x": {"regex": 5}}, ("x", "regex"), "'regex' needs a string", id="regex-int"),
    pytest.param({"x": {"exists": "yes"}}, ("x", "exists"), "true or false", id="exists-str"),
    pytest.param({"x": {"exists": 1}}, ("x", "exists"), "true or false", id="exists-int"),
    pytest.param({"any": {"a": 1}}, ("any",), "'any' needs a non-empty list", id="any-dict"),
    pytest.param({"any": []}, ("any",), "'any' needs a non-empty list", id="any-empty"),
    pytest.param({"all": None}, ("all",), "got null", id="all-null"),
    pytest.param({"all": []}, ("all",), "'all' needs a non-empty list", id="all-empty"),
    pytest.param({"any": [{"a": 1}, "b"]}, ("any", 1), "must be a mapping", id="any-item"),
    pytest.param({"not": []}, ("not",), "'not' needs a non-empty filter", id="not-list"),
    pytest.param({"not": {}}, ("not",), "'not' needs a non-empty filter", id="not-empty"),
    pytest.param(
        {"any": [{"a": 1}, {"channel": {"in": "call"}}]},
        ("any", 1, "channel", "in"),
        "'in' needs a list",
        id="inside-any",
    ),
    pytest.param(
        {"not": {"all": [{"x": {"regex": "["}}]}},
        ("not", "all", 0, "x", "regex"),
        "invalid regex",
        id="inside-not-all",
    ),
    pytest.param(
        {"q": 1, "all": [{"ok": 1}, {"any": [{"ok": 2}, {"t": {"gtee": 1}}]}]},
        ("all", 1, "any", 1, "t", "gtee"),
        "unknown operator 'gtee'",
        id="deeply-nested",
    ),
]


@pytest.mark.parametrize(("spec", "path", "fragment"), ERROR_CASES)
def test_compile_error(spec: Any, path: tuple[str | int, ...], fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        compile_filter(spec)
    assert caught.value.path == path
    assert fragment in caught.value.message


# --- properties --------------------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c", "0", "1", "a.b"]) | st.text(max_size=3)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5)
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=20,
)
PAYLOADS = st.dictionaries(KEYS, JSON, max_size=6)

PATHS = st.lists(st.sampled_from(["a", "b", "c", "0", "1"]), min_size=1, max_size=3).map(".".join)
SCALAR_LISTS = st.lists(SCALARS, max_size=4)
OPERANDS: dict[str, st.SearchStrategy[Any]] = {
    "eq": SCALARS,
    "ne": SCALARS,
    "in": SCALAR_LISTS,
    "nin": SCALAR_LISTS,
    "regex": st.sampled_from(["^a", "b$", "[0-9]+", "(?i)x", ""]),
    "exists": st.booleans(),
}
ORDERED = st.integers() | st.floats(allow_nan=True) | st.text(max_size=3)
OPERANDS.update({op: ORDERED for op in ("gt", "gte", "lt", "lte")})
assert set(OPERANDS) == set(OPERATORS)

OPERATOR_MAPPINGS = st.lists(
    st.one_of([st.tuples(st.just(op), operand) for op, operand in OPERANDS.items()]),
    min_size=1,
    max_size=3,
).map(dict)
FIELD_VALUES = SCALARS | SCALAR_LISTS | OPERATOR_MAPPINGS


def _combine(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda items: {"any": items}),
        st.lists(children, min_size=1, max_size=3).map(lambda items: {"all": items}),
        children.filter(bool).map(lambda inner: {"not": inner}),
    )


FILTERS = st.recursive(st.dictionaries(PATHS, FIELD_VALUES, max_size=3), _combine, max_leaves=8)


@given(spec=FILTERS, payload=PAYLOADS)
def test_filters_never_raise(spec: dict[str, Any], payload: dict[str, Any]) -> None:
    assert isinstance(compile_filter(spec)(payload), bool)


@given(spec=FILTERS.filter(bool), payload=PAYLOADS)
def test_not_negates(spec: dict[str, Any], payload: dict[str, Any]) -> None:
    assert compile_filter({"not": spec})(payload) is not compile_filter(spec)(payload)


@given(path=PATHS, operand=SCALARS, payload=PAYLOADS)
def test_ne_negates_eq(path: str, operand: Any, payload: dict[str, Any]) -> None:
    eq = compile_filter({path: {"eq": operand}})(payload)
    assert compile_filter({path: {"ne": operand}})(payload) is not eq


@given(path=PATHS, operand=SCALAR_LISTS, payload=PAYLOADS)
def test_nin_negates_in(path: str, operand: list[Any], payload: dict[str, Any]) -> None:
    is_in = compile_filter({path: {"in": operand}})(payload)
    assert compile_filter({path: {"nin": operand}})(payload) is not is_in
    assert compile_filter({path: operand})(payload) is is_in


@given(pattern=st.text(max_size=12))
def test_any_regex_compiles_or_is_a_spec_error(pattern: str) -> None:
    try:
        predicate = compile_filter({"x": {"regex": pattern}})
    except SpecError as error:
        assert error.path == ("x", "regex")
    else:
        assert isinstance(predicate({"x": "some text"}), bool)
