"""A request's bytes on the wire, and the answer read back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from hookd.requests.target import Target

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def encode_request(method: str, target: Target, headers: Mapping[str, str],
                   body: bytes) -> bytes:
    """The request's bytes; ValueError when a header would break the framing (CR, LF, NUL).
    A compiled hook's attempts are framed from its head instead (hookd.requests.head, the
    same bytes: tests/unit/requests/test_head.py) unless they need this."""
    block = "".join([f"{k}: {v}\r\n" for k, v in headers.items()])
    # each line ends in one CR LF: any more, or a NUL, came from a name or a value
    if block.count("\n") != len(headers) or block.count("\r") != len(headers) \
            or "\x00" in block:
        raise ValueError("a header name or value contains CR, LF or NUL")
    head = f"{method} {target.path} HTTP/1.1\r\n"
    if "host" not in map(str.lower, headers):
        head += f"Host: {target.host_header}\r\n"
    tail = f"Content-Length: {len(body)}\r\n\r\n" if body or method in _WITH_BODY else "\r\n"
    return (head + block + tail).encode() + body


class Response(NamedTuple):  # (immutable, and cheaper to make than a frozen dataclass)
    status: int
    retry_after: str | None
    body: bytes  # at most the cap given to the request
    truncated: bool
