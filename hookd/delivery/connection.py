"""One keep-alive HTTP/1.1 connection, parsed by httptools (llhttp, Node's parser): one
request at a time, answers of any framing (length, chunked, until close) read up to a cap."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import cast

import httptools

from hookd.delivery.wire import Response
from hookd.errors import HookdError

MAX_HEAD = 64 * 1024  # bytes of status line and headers we accept in an answer
# told once how a request ended: (the answer, None) or (None, why there is none)
Reply = Callable[[Response | None, BaseException | None], None]


class ProtocolError(HookdError):
    """The endpoint's answer was not HTTP/1.1, too large in its head, or cut short."""


class Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, generation: int) -> None:
        self.loop = loop
        self.generation = generation
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._waiter: Reply | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reset(0)

    def _reset(self, cap: int) -> None:
        self._cap = cap
        self._body = bytearray()
        self._head_bytes = 0
        self._status = 0
        self._retry_after: str | None = None
        self._headers_done = False
        self._framed = False  # Content-Length or chunked: the end is known without EOF
        self._got_bytes = False
        self.reusable = False

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing asked: a confused peer; never reuse it
            self.abort()
            return
        self._got_bytes = True
        asked = self._waiter  # (its reply may start the next request on this connection)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the endpoint switched protocols"))
        except httptools.HttpParserError as exc:
            if self._waiter is not None:
                self._fail(ProtocolError(f"invalid HTTP answer: {exc}"))
        else:
            if self._waiter is asked and not self._headers_done:  # still in the head
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD:
                    self._fail(ProtocolError(f"answer head over {MAX_HEAD} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None:
            return
        if self._headers_done and not self._framed and self._status:
            self._finish(truncated=False)  # the body ran until the close, as it may
        elif not self._got_bytes:
            self._fail(StaleConnection("connection closed before any answer"
                                       + (f": {exc}" if exc else "")))
        else:
            self._fail(ProtocolError("connection closed in the middle of the answer"
                                     + (f": {exc}" if exc else "")))

    # -- httptools callbacks ----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"retry-after":
            self._retry_after = value.decode("latin-1")
        elif lower in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._status = self.parser.get_status_code()
        if 100 <= self._status < 200:  # an interim answer: the real one follows
            return
        self._headers_done = True
        if self._status == 204 or self._status == 304:
            self._framed = True

    def on_body(self, body: bytes) -> None:
        if self._waiter is None or not self._headers_done:
            return
        room = self._cap - len(self._body)
        if len(body) > room:
            self._body += body[:room]
            self._finish(truncated=True)  # the rest is not wanted: the connection goes
        else:
            self._body += body

    def on_message_complete(self) -> None:
        if not self._headers_done:  # the end of an interim (1xx) answer
            self._head_bytes = 0
            self._framed = False
            return
        if self._waiter is not None:
            self.reusable = self.parser.should_keep_alive()
            self._finish(truncated=False)

    # -- requests ---------------------------------------------------------------------------
    def send_to(self, data: bytes, cap: int, deadline: float, reply: Reply) -> None:
        """Write one request; `reply` is called once, from the loop's I/O callbacks, when
        it has ended (answered, failed, or timed out at `deadline`): no future, no task."""
        assert self.transport is not None and self._waiter is None
        self._reset(cap)
        self._waiter = reply
        self._timer = self.loop.call_at(deadline, self._expire)
        self.transport.write(data)

    def send(self, data: bytes, cap: int, deadline: float) -> asyncio.Future[Response]:
        """`send_to`, awaitable."""
        waiter: asyncio.Future[Response] = self.loop.create_future()

        def reply(response: Response | None, exc: BaseException | None) -> None:
            if not waiter.done():
                if exc is not None:
                    waiter.set_exception(exc)
                else:
                    waiter.set_result(cast(Response, response))
        self.send_to(data, cap, deadline, reply)
        return waiter

    def _expire(self) -> None:
        self._timer = None
        self._fail(TimeoutError())

    def _finish(self, truncated: bool) -> None:
        waiter, self._waiter = self._waiter, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if truncated:
            self.reusable = False
        if not self.reusable:
            self.abort()
        if waiter is not None:
            waiter(Response(self._status, self._retry_after, bytes(self._body), truncated),
                   None)

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.abort()
        if waiter is not None:
            waiter(None, exc)

    def abort(self) -> None:
        self.reusable = False
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class StaleConnection(ProtocolError):
    """A kept-alive connection was closed by the peer before it answered: send again."""
