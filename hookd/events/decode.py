"""Events: what a Kafka record means (plain JSON or CloudEvents, both Kafka bindings)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from hookd.errors import DecodeError
from hookd.events.filters import MISSING, get_path
from hookd.events.trace import TraceContext, trace_context


# Not frozen, so that __init__ sets each slot directly: a frozen dataclass's goes through
# object.__setattr__ per field (a C call that slices an argument tuple, ~700 instructions
# each under callgrind: 12 a record for these two, more than all the rest of decode_event
# but orjson). Immutable still, by convention checked by mypy: the fields are Final, so it
# refuses any assignment to them; nothing in hookd changes a record's objects once made
# but Event.context, a cache set once (hookd.requests.render). unsafe_hash: the hash a
# frozen one had (an error for these, whose dicts have none).
@dataclass(slots=True, unsafe_hash=True)
class Meta:
    """Where an event came from; templates see it as `meta`."""

    topic: Final[str]
    partition: Final[int]
    offset: Final[int]
    key: Final[str | None] = None
    timestamp: Final[int | None] = None  # milliseconds since the epoch, as Kafka gives it
    headers: Final[Mapping[str, str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset,
                "key": self.key, "timestamp": self.timestamp, "headers": dict(self.headers)}


@dataclass(slots=True, unsafe_hash=True)  # (not frozen: see Meta)
class Event:
    name: Final[str]
    id: Final[str]
    payload: Final[Mapping[str, Any]]
    meta: Final[Meta]
    trace: Final[TraceContext | None] = None  # the record's W3C trace context (.trace)
    # what templates see of it, built by the first hook that renders it and shared by the
    # others (hookd.requests.render.CompiledHook.variables): nothing of a hook's config
    context: dict[str, Any] | None = field(default=None, compare=False, repr=False)


def _text(raw: bytes | str | None) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    return raw.decode("utf-8", errors="replace")


def make_meta(topic: str, partition: int, offset: int, key: bytes | str | None,
              timestamp: int | None, headers: Sequence[tuple[str, bytes | None]] | None) -> Meta:
    # (_text inlined for bytes, the common case: a call per record and per header saved)
    return Meta(topic, partition, offset,
                key.decode("utf-8", "replace") if key.__class__ is bytes else _text(key),
                timestamp,
                {k: v.decode("utf-8", "replace") if v.__class__ is bytes else _text(v) or ""
                 for k, v in headers} if headers else {})


def _id(value: object, meta: Meta) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{meta.topic}-{meta.partition}-{meta.offset}"


_JSON_TYPES = ("application/json", "text/json")


def _is_json(content_type: str) -> bool:
    """A media type whose data is JSON: application/json, text/json or any `+json` suffix
    (CloudEvents' JSON event format), parameters such as `; charset=utf-8` ignored."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media in _JSON_TYPES or media.endswith("+json")


def _content_type(headers: Mapping[str, str]) -> str | None:
    """The binding's `content-type` header (the event's datacontenttype), any case."""
    for name, value in headers.items():
        if name.lower() == "content-type":
            return value
    return None


def _check_binary_data(meta: Meta) -> None:
    """A binary-mode CloudEvent's data must be JSON (an absent datacontenttype means JSON):
    hookd's payload is a JSON object, so other data is a bad input, said as such."""
    content_type = _content_type(meta.headers)
    if content_type is not None and not _is_json(content_type):
        raise DecodeError(f"CloudEvent data is {content_type!r}, not JSON: only JSON "
                          "object data can be a payload")


def decode_event(value: bytes | None, meta: Meta, name_field: str = "event") -> Event:
    """Turn a record value into an Event, or raise DecodeError saying why not.

    A record is a binary-mode CloudEvent only when it has the `ce_specversion` header (the
    Kafka binding's marker); other `ce_*` headers alone leave it a plain event."""
    if value is None:
        raise DecodeError("record has no value (tombstone)")
    binary = "ce_specversion" in meta.headers
    if binary:
        _check_binary_data(meta)
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"value is not UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DecodeError(f"value is JSON {type(doc).__name__}, not an object")

    name: Any
    raw_id: Any
    structured = not binary and "specversion" in doc
    if binary:  # CloudEvents binary mode: attributes in headers
        name, payload = meta.headers.get("ce_type"), doc
        raw_id = meta.headers.get("ce_id") or doc.get("id")
    elif structured:  # CloudEvents structured mode
        name, raw_id = doc.get("type"), doc.get("id")
        if "data_base64" in doc and "data" not in doc:
            raise DecodeError("CloudEvent data is binary (data_base64), not JSON: only JSON "
                              "object data can be a payload")
        payload = doc.get("data", {})
        if not isinstance(payload, dict):
            raise DecodeError("CloudEvents data is not a JSON object")
    else:
        # get_path's answer without its two calls: a top-level key equal to the whole
        # field wins there too, and only a dotted field can be found any further down
        name, payload = doc.get(name_field, MISSING), doc
        if name is MISSING and "." in name_field:
            name = get_path(doc, name_field)
        raw_id = doc.get("id")
    if not isinstance(name, str) or not name.strip():  # (MISSING is no str)
        raise DecodeError(f"no event name (expected a non-empty string at {name_field!r})"
                          if not binary and not structured
                          else "CloudEvent has no type")
    trace = None  # (a plain record without a traceparent header: one look-up, no call)
    if binary or structured or "traceparent" in meta.headers:
        trace = trace_context(meta.headers, binary, doc if structured else None)
    # (a non-empty string id, the common case, without _id's call)
    return Event(name, raw_id if raw_id.__class__ is str and raw_id else _id(raw_id, meta),
                 payload, meta, trace)
