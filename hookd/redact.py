"""Keep secrets out of everything hookd prints: logs, health, CLI output."""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from typing import Any

MASK = "***"
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


class Redactor:
    """Replaces every known secret value (and URL userinfo) with `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        ordered = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        text = _URL_USERINFO.sub(MASK + "@", text)
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def processor(self, _logger: Any, _name: str,
                  event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """A structlog processor: the last line of defence before a log line is written."""
        for key, value in event_dict.items():
            event_dict[key] = self.value(value)
        return event_dict
