"""Keep secrets out of everything hookd prints: logs, health, CLI output."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

import orjson
from ahocorasick_rs import AhoCorasick, BytesAhoCorasick, MatchKind

MASK = "***"
SHOWN_MASK = "…(redacted)"  # after the first characters kept by Redactor(keep=...)
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
# kept in a query value (legal there, and no separator) when hookd.requests.urls encodes
# one; here, below the URL templates, so that masking a secret needs nothing above it
QUERY_SAFE = "/?:@"


def url_forms(secret: str) -> set[str]:
    """A secret as it may stand in a URL: as it is, and percent-encoded as a path segment
    or a query value (hookd.requests.urls, yarl's query building, forms)."""
    return {secret, quote(secret, safe=""), quote(secret, safe=QUERY_SAFE),
            quote_plus(secret, safe=QUERY_SAFE)}


def _in_json(form: str) -> bytes | None:
    """`form` as orjson writes it inside a string; None if orjson cannot (a lone surrogate:
    then no line holding it is written either)."""
    try:
        return orjson.dumps(form)[1:-1]
    except TypeError:
        return None


class Redactor:
    """Replaces every known secret value, also percent-encoded (and URL userinfo), with
    `***`; with `keep`, with its first `keep` characters (at most a quarter of it) and
    `…(redacted)`, which tells an operator which secret stood there.

    The secrets are found with one Aho-Corasick automaton (ahocorasick-rs): with a regex
    alternation of 2,000 secrets (a thousand hooks with a token and a signing secret each)
    every log string took 400 µs to check; the automaton takes under a microsecond."""

    def __init__(self, secrets: Iterable[str] = (), keep: int = 0) -> None:
        self._keep = keep
        forms = {form for s in secrets if len(s) >= 4 for form in url_forms(s)}
        ordered = sorted(forms, key=lambda form: (-len(form), form))  # (the same every run)
        self._matcher = (AhoCorasick(ordered, matchkind=MatchKind.LeftmostLongest)
                         if ordered else None)
        # each form as a JSON string holds it (orjson escapes only '"', '\\' and control
        # characters): what `touches` looks for, beside the '@' of a URL's userinfo.
        # Leftmost matching: whether any form occurs is the same under every match kind,
        # and only a leftmost automaton may use the SIMD prefilter (Teddy) for a few
        # patterns; the standard one walked the line byte by byte (callgrind: ~22 k
        # instructions for a 330-byte delivery line)
        in_json = [form for form in map(_in_json, ordered) if form]
        self._in_json = (BytesAhoCorasick(in_json, matchkind=MatchKind.LeftmostFirst)
                         if in_json else None)

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
            parts.append(self._mask(text[start:end]))
            at = end
        parts.append(text[at:])
        return "".join(parts)

    def touches(self, document: bytes) -> bool:
        """Whether masking could change what `document`, JSON from orjson, holds: False
        when none of its strings has a secret or an '@' in it. One scan of the whole line,
        so that a log line whose strings are all clean (most are) is not redacted string
        by string; True may be a false alarm (a key, a number), never a miss."""
        # (memchr; as one more pattern it slowed the scan. `in`, not `.find`: no method
        # call and no argument parsing, ~0.5 k instructions a line less under callgrind)
        if b"@" in document:
            return True
        return self._in_json is not None and bool(
            self._in_json.find_matches_as_indexes(document))

    def _mask(self, secret: str) -> str:
        if not self._keep:
            return MASK
        return secret[:min(self._keep, len(secret) // 4)] + SHOWN_MASK

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value
