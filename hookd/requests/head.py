"""A hook's request head, framed once at load: what every request of the hook sends the
same (its static headers, content-type, user-agent; for a fixed URL its request line and
Host) is written and checked for CR, LF and NUL when the hook is compiled, so an attempt
frames only what varies (the templated values, webhook-id, trace headers, timestamp,
signature, Content-Length).

The bytes are those of hookd.delivery.wire.encode_request for the same request, header
for header (tests/unit/requests/test_head.py compares them over a table of hooks); that
stays the way for whatever this does not frame (a plain-HTTP proxy's absolute-form target,
extra headers that would replace one of the hook's, a head that failed its check).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from hookd import USER_AGENT
from hookd.requests.auth import Headers
from hookd.requests.target import Target

WITH_BODY = frozenset({"POST", "PUT", "PATCH"})  # Content-Length: 0 even without a body
# what every attempt adds after the hook's own headers (hookd.requests.render.Request)
ATTEMPT_HEADERS = ("webhook-timestamp", "webhook-signature")
TRACE_HEADERS = ("traceparent", "tracestate")  # the event's, after webhook-id


def lines(headers: Iterable[tuple[str, str]]) -> str:
    """Header lines as the wire writes them, unchecked."""
    return "".join([f"{k}: {v}\r\n" for k, v in headers])


def framed(block: str, count: int) -> bool:
    """`block`, `count` header lines, ends each line in one CR LF and holds no other CR,
    LF or NUL (the check hookd.delivery.wire.encode_request makes)."""
    return block.count("\n") == count and block.count("\r") == count and "\x00" not in block


def start_line(method: str, target: Target) -> str:
    """The request line and Host, as sent straight to the target (or inside a tunnel)."""
    return f"{method} {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\n"


class Head(NamedTuple):
    """The fixed part of a hook's requests, framed and checked (compile_head)."""

    method: str
    target: Target | None  # the fixed URL's (no query added per event): parsed at load
    start: str | None  # its request line and Host (None: from the target per attempt)
    fixed: str  # static, content-type and user-agent lines, then `webhook-id: `
    names: frozenset[str]  # every header name the hook's requests may carry
    with_length: bool  # Content-Length even for an empty body


def compile_head(method: str, target: Target | None, templated: tuple[str, ...],
                 static: Headers, content_type: str, trace: bool) -> Head | None:
    """The hook's Head, or None when what is fixed does not pass the wire's check (the
    attempt then goes by encode_request, which says so as it always did), or a name would
    repeat or be `host` (whose framing encode_request does its own way)."""
    fixed = lines((*static, ("content-type", content_type), ("user-agent", USER_AGENT)))
    names = [*templated, *(k for k, _ in static), "content-type", "user-agent", "webhook-id",
             *ATTEMPT_HEADERS, *(TRACE_HEADERS if trace else ())]
    if (not framed(fixed, len(static) + 2) or not framed(lines((n, "") for n in templated),
                                                             len(templated))
            or len(set(names)) != len(names) or any(n.lower() == "host" for n in names)):
        return None
    return Head(method, target, start_line(method, target) if target is not None else None,
                fixed + "webhook-id: ", frozenset(names), method in WITH_BODY)


def attempt_bytes(head: Head, text: str, target: Target, timestamp: int,
                  signature: str | None, extra: Mapping[str, str] | None,
                  body: bytes) -> bytes | None:
    """One attempt's bytes: `text` (the request's lines up to its trace headers, framed at
    render), then what is new per attempt. None when `extra` (an OAuth2 token) replaces one
    of the hook's headers, names Host or does not pass the check: encode_request then does
    it as it always did (its bytes, or its ValueError)."""
    if head.start is None:
        text = start_line(head.method, target) + text
    text += f"webhook-timestamp: {timestamp}\r\n"
    if signature is not None:
        text += f"webhook-signature: {signature}\r\n"
    if extra:
        names = head.names
        for name in extra:
            if name in names or name.lower() == "host":
                return None
        block = lines(extra.items())
        if not framed(block, len(extra)):
            return None
        text += block
    if body or head.with_length:
        return f"{text}Content-Length: {len(body)}\r\n\r\n".encode() + body
    return (text + "\r\n").encode()
