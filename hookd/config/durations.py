"""Durations as operators write them: `250ms`, `5s`, `5m`, `2h`, `1d`, `1h30m`."""

from __future__ import annotations

import re

from hookd.errors import SpecError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", re.ASCII)
PATTERN = r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+"  # a whole duration (also in the JSON schema)
_WHOLE = re.compile(PATTERN, re.ASCII)


def parse_duration(value: object) -> float:
    """Seconds in a duration string; SpecError with a helpful message otherwise."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise SpecError(f"expected a duration such as '250ms', '5s', '2h', got {value!r}")
    text = value.strip()
    if not _WHOLE.fullmatch(text):
        raise SpecError(f"invalid duration {value!r} (use a number and a unit: ms, s, m, h, d)")
    # milliseconds divided, not multiplied by 0.001: '9ms' is exactly the float 9/1000
    return sum(float(num) / 1000 if unit == "ms" else float(num) * _UNITS[unit]
               for num, unit in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of `seconds` (inverse of parse_duration for display)."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"
