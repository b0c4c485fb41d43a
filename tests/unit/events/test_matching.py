from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given

from hookd.errors import SpecError
from hookd.events.filters import Predicate, compile_filter
from hookd.events.matching import EventPattern, HookIndex


def always(payload: Mapping[str, Any]) -> bool:
    return True


def never(payload: Mapping[str, Any]) -> bool:
    return False


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        pytest.param("Answered", "Answered", True, id="exact"),
        pytest.param("Answered", "answered", True, id="exact-name-lowercase"),
        pytest.param("answered", "ANSWERED", True, id="exact-pattern-lowercase"),
        pytest.param("Answered", "Answered2", False, id="exact-longer"),
        pytest.param("Answered", "Answere", False, id="exact-shorter"),
        pytest.param("Call:*", "Call:Started", True, id="star"),
        pytest.param("Call:*", "call:ENDED", True, id="star-case"),
        pytest.param("Call:*", "Call:", True, id="star-empty"),
        pytest.param("Call:*", "Chat:Started", False, id="star-other-prefix"),
        pytest.param("Call:*", "xCall:Started", False, id="star-anchored-start"),
        pytest.param("*Ended", "Call:Ended", True, id="leading-star"),
        pytest.param("*Ended", "Call:Ended2", False, id="leading-star-anchored-end"),
        pytest.param("*", "anything", True, id="only-star"),
        pytest.param("Call:?", "Call:1", True, id="question"),
        pytest.param("Call:?", "Call:12", False, id="question-one-char"),
        pytest.param("Call:[ab]", "Call:B", True, id="class-case"),
        pytest.param("Call:[A-C]", "call:b", True, id="class-range-case"),
        pytest.param("Call:[!ab]", "Call:c", True, id="negated-class"),
        pytest.param("Call:[!ab]", "Call:a", False, id="negated-class-false"),
        pytest.param("a.b", "axb", False, id="dot-is-literal"),
        pytest.param("a+b", "a+b", True, id="regex-chars-literal"),
        pytest.param("Call[", "call[", True, id="unclosed-bracket-literal"),
    ],
)
def test_event_pattern_matches(pattern: str, name: str, expected: bool) -> None:
    assert EventPattern(pattern).matches(name) is expected


@pytest.mark.parametrize(
    ("pattern", "prefix", "is_glob"),
    [
        pytest.param("Answered", "answered", False, id="exact"),
        pytest.param("Call:*", "call:", True, id="star"),
        pytest.param("*Ended", "", True, id="leading-star"),
        pytest.param("a?b*", "a", True, id="question-first"),
        pytest.param("Ab[c]", "ab", True, id="class"),
    ],
)
def test_event_pattern_prefix(pattern: str, prefix: str, is_glob: bool) -> None:
    compiled = EventPattern(pattern)
    assert (compiled.prefix, compiled.is_glob) == (prefix, is_glob)


def test_event_pattern_rejects_empty() -> None:
    with pytest.raises(SpecError, match="non-empty"):
        EventPattern("")


queue_7 = compile_filter({"queue_id": 7})

ENTRIES: list[tuple[Sequence[str], Predicate, str]] = [
    (["Answered"], always, "answered"),
    (["Call:*"], always, "call-glob"),
    (["Call:Started", "call:*", "*:started"], always, "call-started-3-ways"),
    (["answered", "Hangup"], queue_7, "answered-or-hangup-q7"),
    (["*"], always, "everything"),
    (["Chat:?nd"], always, "chat-end"),
    (["Answered"], never, "never"),
    ([], always, "no-patterns"),
]


@pytest.mark.parametrize(
    ("name", "payload", "expected"),
    [
        pytest.param(
            "Answered",
            {"queue_id": 7},
            ["answered", "answered-or-hangup-q7", "everything"],
            id="exact-and-filter",
        ),
        pytest.param("ANSWERED", {"queue_id": 8}, ["answered", "everything"], id="filter-false"),
        pytest.param("Hangup", {"queue_id": 7}, ["answered-or-hangup-q7", "everything"], id="list"),
        pytest.param(
            "Call:Started",
            {},
            ["call-glob", "call-started-3-ways", "everything"],
            id="dedup-across-patterns",
        ),
        pytest.param(
            "call:ended",
            {},
            ["call-glob", "call-started-3-ways", "everything"],
            id="glob-case-insensitive",
        ),
        pytest.param("Chat:Started", {}, ["call-started-3-ways", "everything"], id="suffix-glob"),
        pytest.param("Chat:End", {}, ["everything", "chat-end"], id="question-glob"),
        pytest.param("Chat:Ended", {}, ["everything"], id="question-glob-too-long"),
        pytest.param("", {}, ["everything"], id="empty-name"),
        pytest.param("Call", {}, ["everything"], id="prefix-only-is-not-match"),
    ],
)
def test_hook_index_match(name: str, payload: dict[str, Any], expected: list[str]) -> None:
    assert HookIndex(ENTRIES).match(name, payload) == expected


def test_len() -> None:
    assert len(HookIndex(ENTRIES)) == len(ENTRIES)
    assert len(HookIndex([])) == 0


def test_order_is_entry_order_across_exact_and_glob() -> None:
    index = HookIndex(
        [
            (["A*"], always, "glob-first"),
            (["abc"], always, "exact"),
            (["*c"], always, "suffix"),
            (["ABC"], always, "exact-again"),
            (["a?c", "abc"], always, "both"),
        ]
    )
    assert index.match("Abc", {}) == ["glob-first", "exact", "suffix", "exact-again", "both"]


def test_an_entry_matching_through_every_pattern_appears_once() -> None:
    index = HookIndex([(["Answered", "answered", "ANS*", "*", "Answ?red"], always, "x")])
    assert index.match("Answered", {}) == ["x"]


def test_payload_is_checked_on_every_call_despite_the_name_cache() -> None:
    index = HookIndex([(["Answered"], queue_7, "q7")])
    assert index.match("Answered", {"queue_id": 7}) == ["q7"]
    assert index.match("Answered", {"queue_id": 8}) == []
    assert index.match("answered", {"queue_id": 7}) == ["q7"]


def test_items_are_returned_as_given() -> None:
    item = object()
    assert HookIndex([(["A"], always, item)]).match("a", {})[0] is item


def test_long_names_bypass_the_cache_and_still_match() -> None:
    index = HookIndex([(["Call:*"], always, "glob"), (["C" * 1000], always, "exact")])
    assert index.match("Call:" + "x" * 1000, {}) == ["glob"]
    assert index.match("c" * 1000, {}) == ["exact"]
    assert index.match("c" * 1001, {}) == []


def test_more_names_than_the_cache_holds() -> None:
    index = HookIndex([(["N1*"], always, "n1")])
    expected = [i for i in range(5000) if str(i).startswith("1")]
    for _ in range(2):
        assert [i for i in range(5000) if index.match(f"n{i}", {})] == expected


def test_a_str_instead_of_a_list_of_patterns_is_refused() -> None:
    with pytest.raises(TypeError, match="not a str"):
        HookIndex([("Answered", always, "x")])


def test_an_invalid_pattern_is_refused() -> None:
    with pytest.raises(SpecError):
        HookIndex([(["Answered", ""], always, "x")])


# --- equivalence with a linear scan ------------------------------------------------------------

ALPHABET = "abAB:İß"  # İ and ß change length when lowercased or casefolded
PATTERNS = st.text(alphabet=ALPHABET + "*?[]!", min_size=1, max_size=5)
NAMES = st.text(alphabet=ALPHABET + "[]!", max_size=7)
ENTRY_SPECS = st.lists(st.tuples(st.lists(PATTERNS, max_size=3), st.booleans()), max_size=12)


def brute_force(entries: list[tuple[list[str], bool]], name: str) -> list[int]:
    return [
        i
        for i, (patterns, enabled) in enumerate(entries)
        if enabled and any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in patterns)
    ]


@given(entries=ENTRY_SPECS, data=st.data())
def test_match_equals_linear_scan(entries: list[tuple[list[str], bool]], data: Any) -> None:
    index = HookIndex(
        [
            (patterns, always if enabled else never, i)
            for i, (patterns, enabled) in enumerate(entries)
        ]
    )
    known = [p.replace("*", "").replace("?", "a") for patterns, _ in entries for p in patterns]
    pool = NAMES | st.sampled_from(known) if known else NAMES
    for name in data.draw(st.lists(pool, min_size=1, max_size=6)):
        expected = brute_force(entries, name)
        assert index.match(name, {}) == expected
        assert index.match(name.upper(), {}) == brute_force(entries, name.upper())
        assert index.match(name, {}) == expected  # served from the cache
