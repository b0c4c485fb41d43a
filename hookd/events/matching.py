"""Which hooks an event reaches: its name against each hook's names and globs, then the filter.

Exact names are found with one dict lookup, globs through their literal prefix, and the result
for a name is cached, so the cost of an event depends on the hooks that can match it rather
than on how many hooks there are.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from hookd.errors import SpecError
from hookd.events.filters import Predicate, equality_key, get_path, required_equalities

__all__ = ["EventPattern", "HookIndex"]

T = TypeVar("T")

_WILDCARDS: Final = frozenset("*?[")
_CACHE_SIZE: Final = 4096  # distinct event names whose candidates are remembered
_MAX_CACHED_NAME: Final = 256  # longer names are looked up every time instead of cached
_MIN_INDEXED: Final = 8  # candidates for a name before an equality index is worth having
_MAX_MERGED: Final = 200_000  # entries the per-value candidate tuples may hold in all


@dataclass(frozen=True)
class EventPattern:
    """One event name or fnmatch glob (* ? [...]), matched case-insensitively."""

    text: str
    lowered: str = field(init=False, repr=False)
    prefix: str = field(init=False, repr=False)  # lowered text before the first wildcard
    is_glob: bool = field(init=False, repr=False)
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text:
            raise SpecError(f"an event name must be a non-empty string, got {self.text!r}")
        lowered = self.text.lower()
        cut = next((i for i, char in enumerate(lowered) if char in _WILDCARDS), len(lowered))
        object.__setattr__(self, "lowered", lowered)
        object.__setattr__(self, "prefix", lowered[:cut])
        object.__setattr__(self, "is_glob", cut < len(lowered))
        object.__setattr__(self, "_regex", re.compile(fnmatch.translate(lowered)))

    def matches(self, name: str) -> bool:
        return self.matches_lowered(name.lower())

    def matches_lowered(self, lowered_name: str) -> bool:
        """Like matches(), for a name the caller has already lowercased."""
        return self._regex.match(lowered_name) is not None


@dataclass(frozen=True)
class _Entry(Generic[T]):
    predicate: Predicate
    item: T
    position: int = 0


@dataclass(frozen=True)
class _Candidates(Generic[T]):
    """The entries a name can reach; when many of them require one field to equal some
    value (`domain: tenant-7`, one hook per tenant), they are also split by that value, so
    an event is checked only against the entries of its own value and the others."""

    entries: tuple[_Entry[T], ...]
    path: str | None = None
    by_value: Mapping[Any, tuple[_Entry[T], ...]] = field(default_factory=dict)
    rest: tuple[_Entry[T], ...] = ()

    def pick(self, payload: Mapping[str, Any]) -> tuple[_Entry[T], ...]:
        if self.path is None:
            return self.entries
        key = equality_key(get_path(payload, self.path))
        return self.by_value.get(key, self.rest) if key is not None else self.rest


def _split_by_value(entries: tuple[_Entry[T], ...]) -> _Candidates[T]:
    if len(entries) < _MIN_INDEXED:
        return _Candidates(entries)
    paths: dict[str, int] = {}
    for entry in entries:
        for path in {p for p, _ in required_equalities(entry.predicate)}:
            paths[path] = paths.get(path, 0) + 1
    if not paths:
        return _Candidates(entries)
    path, count = max(paths.items(), key=lambda kv: kv[1])
    if count < _MIN_INDEXED // 2:
        return _Candidates(entries)
    groups: dict[Any, list[_Entry[T]]] = {}
    rest: list[_Entry[T]] = []
    for entry in entries:
        values = {equality_key(v) for p, v in required_equalities(entry.predicate) if p == path}
        key = values.pop() if len(values) == 1 else None
        if key is not None:
            groups.setdefault(key, []).append(entry)
        else:  # no equality on the path (or one no payload value can meet): always checked
            rest.append(entry)
    if len(groups) * len(rest) > _MAX_MERGED:
        return _Candidates(entries)
    by_value = {key: tuple(sorted([*group, *rest], key=lambda e: e.position))
                for key, group in groups.items()}
    return _Candidates(entries, path, by_value, tuple(rest))


class HookIndex(Generic[T]):
    """Items keyed by event patterns and a payload predicate, looked up by event name."""

    def __init__(self, entries: Iterable[tuple[Sequence[str], Predicate, T]]) -> None:
        """Entries are (patterns, predicate, item); an entry with no patterns never matches."""
        self._entries: list[_Entry[T]] = []
        self._exact: dict[str, list[int]] = {}
        self._globs: dict[str, list[tuple[int, EventPattern]]] = {}
        for index, (patterns, predicate, item) in enumerate(entries):
            if isinstance(patterns, str):
                raise TypeError(f"entry {index}: patterns must be a sequence of str, not a str")
            self._entries.append(_Entry(predicate, item, index))
            for text in patterns:
                pattern = EventPattern(text)
                if pattern.is_glob:
                    self._globs.setdefault(pattern.prefix, []).append((index, pattern))
                else:
                    self._exact.setdefault(pattern.lowered, []).append(index)
        self._prefix_lengths = sorted({len(prefix) for prefix in self._globs})
        self._cached_candidates = functools.lru_cache(maxsize=_CACHE_SIZE)(self._candidates)

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, name: str, payload: Mapping[str, Any]) -> list[T]:
        """The items whose patterns match `name` and whose predicate holds, in entry order."""
        lowered = name.lower()
        if len(lowered) <= _MAX_CACHED_NAME:
            candidates = self._cached_candidates(lowered)
        else:
            candidates = self._candidates(lowered)
        return [entry.item for entry in candidates.pick(payload) if entry.predicate(payload)]

    def _candidates(self, lowered: str) -> _Candidates[T]:
        return _split_by_value(self._reachable(lowered))

    def _reachable(self, lowered: str) -> tuple[_Entry[T], ...]:
        """The entries with a pattern matching the name, in entry order, each once."""
        hits = set(self._exact.get(lowered, ()))
        for length in self._prefix_lengths:  # only prefix lengths some glob has
            if length > len(lowered):
                break
            for index, pattern in self._globs.get(lowered[:length], ()):
                if index not in hits and pattern.matches_lowered(lowered):
                    hits.add(index)
        return tuple(self._entries[index] for index in sorted(hits))
