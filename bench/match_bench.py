"""Micro-benchmark: HookIndex.match() cost with 3 hooks versus 1,000 hooks.

Both indexes hold the same 3 hooks on "Answered"; the large one adds 997 hooks that cannot
match it (exact names like "Custom12" and globs like "X12:*"). If matching only looks at hooks
that can match, the two costs are close.

    python bench/match_bench.py
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from hookd.events.filters import Predicate, compile_filter
from hookd.events.matching import HookIndex

CALLS = 200_000
TOTAL_HOOKS = 1_000
GLOB_EVERY = 10  # one unrelated hook in ten is a glob

Entry = tuple[Sequence[str], Predicate, str]

PAYLOAD: Mapping[str, Any] = {
    "queue_id": 7,
    "channel": "call",
    "talk_sec": 45,
    "variables": {"priority": "high"},
}


def answered_hooks() -> list[Entry]:
    return [
        (["Answered"], compile_filter({"queue_id": 7}), "answered-q7"),
        (["answered", "Hangup"], compile_filter({"talk_sec": {"gte": 30}}), "answered-long"),
        (["Answ*"], compile_filter({"variables.priority": {"regex": "^high$"}}), "answ-glob"),
    ]


def unrelated_hooks(count: int) -> list[Entry]:
    always = compile_filter(None)
    return [
        ([f"X{i}:*"] if i % GLOB_EVERY == 0 else [f"Custom{i}"], always, f"other-{i}")
        for i in range(count)
    ]


def ns_per_event(index: HookIndex[str]) -> float:
    match = index.match
    assert len(match("Answered", PAYLOAD)) == 3
    start = time.perf_counter()
    for _ in range(CALLS):
        match("Answered", PAYLOAD)
    return (time.perf_counter() - start) / CALLS * 1e9


def main() -> None:
    small = HookIndex(answered_hooks())
    large = HookIndex(answered_hooks() + unrelated_hooks(TOTAL_HOOKS - 3))
    small_ns = ns_per_event(small)
    large_ns = ns_per_event(large)
    print(f"{len(small):>5} hooks: {small_ns:8.0f} ns/event")
    print(f"{len(large):>5} hooks: {large_ns:8.0f} ns/event")
    print(f"ratio {len(large)}/{len(small)}: {large_ns / small_ns:.2f}x")


if __name__ == "__main__":
    main()
