"""A record's W3C trace context (https://www.w3.org/TR/trace-context/): `traceparent` and
`tracestate`, read once per record, checked, and handed on unchanged with each delivery.

Where from, first valid one wins: the record's Kafka headers `traceparent`/`tracestate`
(what OpenTelemetry's Kafka instrumentation writes: the latest hop), then the CloudEvent's
distributed-tracing extension attributes (binary mode: `ce_traceparent`/`ce_tracestate`
headers; structured mode: `traceparent`/`tracestate` in the value), which carry the trace
where the event started. An invalid traceparent is dropped with its tracestate (never sent
on); an invalid tracestate alone is dropped, the traceparent kept (W3C §3.3.1.1).

Unchanged, not a child span: hookd records no spans, so a new parent-id would name a span
no collector ever receives and the receiver's span would hang off a hole in the trace.
W3C §3.5 lets a service that does not take part in tracing propagate both headers as it
got them (then tracestate MUST NOT change either), as proxies and Redpanda Connect do.

Written here, not with opentelemetry's TraceContextTextMapPropagator: that parses into a
SpanContext and writes a new header (hookd would then depend on the OTel SDK and API to
re-emit the same string); the format is one regular expression.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import structlog

log = structlog.get_logger("hookd.events.trace")

# version-traceid-parentid-flags, lower-case hex; a later version may add fields after a dash
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})"
                          r"(-[\x21-\x7e]*)?")
_ZERO_TRACE, _ZERO_PARENT = "0" * 32, "0" * 16
# list-member: key=value; key: simple or tenant@system; value: printable, no `,` or `=`
_MEMBER = re.compile(r"[a-z0-9][_0-9a-z\-*/@]{0,255}="
                     r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
MAX_MEMBERS = 32  # W3C: at most 32 list-members in a tracestate
NO_TRACE: dict[str, str] = {"traceparent": "", "tracestate": ""}  # what templates see then


@dataclass(slots=True, unsafe_hash=True)  # (not frozen, Final: as decode.Meta, and why)
class TraceContext:
    """A checked traceparent and its tracestate (None: none, or an invalid one dropped)."""

    traceparent: Final[str]
    tracestate: Final[str | None] = None
    # the request headers and the templates' `trace`, made once per record
    headers: Final[tuple[tuple[str, str], ...]] = field(init=False, compare=False, repr=False)
    variables: Final[dict[str, str]] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        parent, state = self.traceparent, self.tracestate
        self.headers = ((("traceparent", parent),) if state is None  # type: ignore[misc]
                        else (("traceparent", parent), ("tracestate", state)))
        self.variables = {"traceparent": parent, "tracestate": state or ""}  # type: ignore[misc]

    @property
    def trace_id(self) -> str:
        return self.traceparent[3:35]


@dataclass
class Dropped:
    """Invalid trace context seen (and dropped) by this process; the first is logged at
    debug, the rest only counted."""

    traceparent: int = 0
    tracestate: int = 0

    def note(self, what: str, value: object) -> None:
        if self.traceparent + self.tracestate == 0:
            log.debug("invalid trace context dropped (only the first is logged)",
                      header=what, value=repr(value)[:120])
        setattr(self, what, getattr(self, what) + 1)


DROPPED = Dropped()


def valid_traceparent(value: object) -> bool:
    """W3C §3.2: version-traceid-parentid-flags; version ff, an all-zero trace-id or
    parent-id are invalid; version 00 has exactly these four fields."""
    if not isinstance(value, str):
        return False
    m = _TRACEPARENT.fullmatch(value)
    if m is None:
        return False
    version, trace_id, parent_id, _, more = m.groups()
    if version == "ff" or (version == "00" and more is not None):
        return False
    return trace_id != _ZERO_TRACE and parent_id != _ZERO_PARENT


def valid_tracestate(value: object) -> bool:
    """W3C §3.3: comma-separated key=value members (empty ones allowed), at most 32."""
    if not isinstance(value, str):
        return False
    members = [m.strip(" \t") for m in value.split(",")]
    members = [m for m in members if m]
    return len(members) <= MAX_MEMBERS and all(_MEMBER.fullmatch(m) for m in members)


def checked_trace(parent: object, state: object) -> TraceContext | None:
    """A TraceContext of these values if the traceparent is valid (an invalid tracestate
    is dropped alone); else None. Each invalid value is counted in DROPPED."""
    if not valid_traceparent(parent):
        DROPPED.note("traceparent", parent)
        return None
    assert isinstance(parent, str)
    if state is not None and not valid_tracestate(state):
        DROPPED.note("tracestate", state)
        state = None
    return TraceContext(parent, state if isinstance(state, str) else None)


def trace_context(headers: Mapping[str, str], binary: bool = False,
                  structured: Mapping[str, Any] | None = None) -> TraceContext | None:
    """The record's trace context, or None. `binary`: a binary-mode CloudEvent (its
    attributes are `ce_` headers); `structured`: the value of a structured-mode one. A
    plain record without one costs a dict look-up."""
    parent = headers.get("traceparent")
    if parent is not None:
        found = checked_trace(parent, headers.get("tracestate"))
        if found is not None:
            return found
    parent = headers.get("ce_traceparent") if binary else None
    if parent is not None:
        found = checked_trace(parent, headers.get("ce_tracestate"))
        if found is not None:
            return found
    if structured is not None:
        parent = structured.get("traceparent")
        if parent is not None:
            return checked_trace(parent, structured.get("tracestate"))
    return None
