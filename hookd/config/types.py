"""Shared pieces of the config model: the strict base model, durations with units, names."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from hookd.config.durations import PATTERN as DURATION_PATTERN
from hookd.config.durations import parse_duration
from hookd.errors import SpecError


def _duration(value: object) -> float:
    """Config durations carry a unit (`30` alone is ambiguous: seconds? ms?)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"a duration needs a unit, e.g. '{value}s' or '{value}ms'")
    try:
        return parse_duration(value)
    except SpecError as exc:
        raise ValueError(exc.message) from None


def as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


# Written "250ms", "5s", "2h", always with a unit; the JSON schema says so, so that
# editors validating the YAML against `hookd schema config` accept "10s" and refuse 10.
Duration = Annotated[float, BeforeValidator(_duration), WithJsonSchema({
    "type": "string", "pattern": rf"^\s*{DURATION_PATTERN}\s*$",
    "description": "a duration with its unit: 250ms, 5s, 5m, 2h, 1d, 1h30m"})]
NonEmptyStr = Annotated[str, Field(min_length=1)]
HOOK_ID = r"^[A-Za-z0-9_.-]+$"
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(ms|s|m|h)\s*$")
DEFAULT_SCHEDULE = ["5s", "5m", "30m", "2h", "5h", "10h", "14h", "20h", "24h"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def host_port(value: str) -> str:
    """`value` if it is HOST:PORT (the health endpoint's address), else ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


def parse_rate(text: str) -> tuple[float, float]:
    """`50/s` → (50 requests, per 1.0 second)."""
    m = RATE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"invalid rate {text!r} (expected e.g. 50/s, 600/m)")
    return float(m.group(1)), {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2)]
