"""Shared pieces of the config model: the strict base model, durations with units, names."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
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
    # a field's docstring is its description: in `hookd schema config` and in the generated
    # docs/configuration.md (`hookd schema config --markdown`)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True,
                              use_attribute_docstrings=True)


class HostPort(str):
    """HOST:PORT as written (the health endpoint's address) and, split once when the config
    is loaded, its `host` (an IPv6 address without its brackets) and `port`."""

    host: str
    port: int

    def __new__(cls, value: str) -> HostPort:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"expected HOST:PORT, got {value!r}")
        self = super().__new__(cls, value)
        self.host, self.port = host.strip("[]"), int(port)
        return self


def host_port(value: str) -> HostPort:
    """`value` parsed if it is HOST:PORT, else ValueError."""
    return value if isinstance(value, HostPort) else HostPort(value)


class Rate(str):
    """A rate limit as written (`50/s`) and, parsed once when the config is loaded,
    `limit` requests per `period` seconds."""

    limit: float
    period: float

    def __new__(cls, text: str) -> Rate:
        limit, period = parse_rate(text)
        self = super().__new__(cls, text)
        self.limit, self.period = limit, period
        return self


def parse_rate(text: str) -> tuple[float, float]:
    """`50/s` → (50 requests, per 1.0 second)."""
    m = RATE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"invalid rate {text!r} (expected e.g. 50/s, 600/m)")
    return float(m.group(1)), {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2)]


def _parsed(kind: type[str], what: str) -> PlainValidator:
    def validate(value: object) -> str:
        if isinstance(value, kind):
            return value
        if not isinstance(value, str):
            raise ValueError(f"expected {what} as a string, got {type(value).__name__}")
        return kind(value)
    return PlainValidator(validate)


# parsed by the model, once: the hot path and the health server read the parts
_AS_WRITTEN = PlainSerializer(str, return_type=str)
Listen = Annotated[HostPort, _parsed(HostPort, "HOST:PORT"), _AS_WRITTEN, WithJsonSchema(
    {"type": "string", "description": "HOST:PORT, e.g. 127.0.0.1:8081"})]
RateLimit = Annotated[Rate, _parsed(Rate, "a rate"), _AS_WRITTEN, WithJsonSchema(
    {"type": "string", "pattern": RATE.pattern, "description": "e.g. 50/s, 600/m"})]
