"""A lean HTTP/1.1 client for deliveries: keep-alive connections per endpoint, parsed by
httptools (llhttp, Node's parser).

Why not aiohttp's client: it spent about 107 µs of CPU per request here, more than the rest
of a delivery (decode, match, render, sign, log) put together; this does a request in
about 25 µs (`python -m bench.http_client`: 9,300 against 39,800 requests/s). It does
only what a webhook needs: one request at a time per connection, Content-Length request
bodies, answers of any framing (length, chunked, until close) read up to a cap; no
redirects, cookies, proxies or compression. Where to connect is decided by the caller's
resolver (the SSRF guard). Each endpoint keeps its own idle connections (`Connections`,
owned by its `Endpoint`); a `Connector` shared by all opens them.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import cast

import httptools

from hookd.delivery.wire import Response, encode_request
from hookd.errors import HookdError
from hookd.loops import RunningLoop
from hookd.requests.target import Target

MAX_HEAD = 64 * 1024  # bytes of status line and headers we accept in an answer


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
        self._waiter: asyncio.Future[Response] | None = None
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
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the endpoint switched protocols"))
        except httptools.HttpParserError as exc:
            if self._waiter is not None:
                self._fail(ProtocolError(f"invalid HTTP answer: {exc}"))
        else:
            if self._waiter is not None and not self._headers_done:  # still in the head
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
    def send(self, data: bytes, cap: int, deadline: float) -> asyncio.Future[Response]:
        assert self.transport is not None and self._waiter is None
        self._reset(cap)
        self._waiter = waiter = self.loop.create_future()
        self._timer = self.loop.call_at(deadline, self._expire)
        self.transport.write(data)
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
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self._status, self._retry_after, bytes(self._body),
                                       truncated))
        if not self.reusable:
            self.abort()

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def abort(self) -> None:
        self.reusable = False
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class StaleConnection(ProtocolError):
    """A kept-alive connection was closed by the peer before it answered: send again."""


Resolve = Callable[[str, int], Awaitable[list[str]]]


class Connector:
    """How connections are opened: where to (the caller's resolver: the SSRF guard) and
    under which rules (`generation`: a connection opened under older rules is not kept)."""

    def __init__(self, resolve: Resolve, keepalive: float = 30.0) -> None:
        self.resolve = resolve
        self.keepalive = keepalive
        self.generation = 0

    async def connect(self, target: Target, tls: ssl.SSLContext | None,
                      loop: asyncio.AbstractEventLoop) -> Connection:
        generation = self.generation  # the rules these addresses are checked under
        addresses = await self.resolve(target.host, target.port)
        error: OSError | None = None
        for address in addresses:
            try:
                _, conn = await loop.create_connection(
                    lambda: Connection(loop, generation), address, target.port,
                    ssl=tls, server_hostname=target.host if tls is not None else None)
                return conn
            except OSError as exc:
                error = exc
        raise error or OSError(f"no address for {target.host}")


class Connections:
    """The idle keep-alive connections of one endpoint, per TLS settings, most recent
    first; `on_empty` is told when the last one is swept away."""

    def __init__(self, connector: Connector,
                 on_empty: Callable[[], None] | None = None) -> None:
        self.connector = connector
        self.on_empty = on_empty
        self._idle: dict[ssl.SSLContext | None, list[Connection]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop = RunningLoop()

    def __bool__(self) -> bool:
        """Whether any connection is kept."""
        return bool(self._idle)

    async def request(self, method: str, target: Target, headers: Mapping[str, str],
                      body: bytes, timeout: float, cap: int,
                      tls: ssl.SSLContext | None) -> Response:
        """One request to `target` (`wire.target_of` of the URL, which the caller has
        already) within `timeout` seconds, connecting included. Raises TimeoutError,
        OSError (connect, TLS), ProtocolError, ValueError (headers) or whatever the
        connector's `resolve` raises."""
        data = encode_request(method, target, headers, body)
        loop = self._loop()
        deadline = loop.time() + timeout
        conn = self._take(tls, loop.time())
        if conn is not None:
            try:
                response = await conn.send(data, cap, deadline)
            except StaleConnection:  # the peer closed it while idle: once more, fresh
                conn = None
            except BaseException:
                conn.abort()
                raise
            else:
                self._give_back(tls, conn, loop)
                return response
        async with asyncio.timeout_at(deadline):
            conn = await self.connector.connect(target, tls, loop)
        try:
            response = await conn.send(data, cap, deadline)
        except BaseException:
            conn.abort()
            raise
        self._give_back(tls, conn, loop)
        return response

    def _take(self, tls: ssl.SSLContext | None, now: float) -> Connection | None:
        idle = self._idle.get(tls)
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.connector.keepalive:
                return conn
            conn.abort()
        return None

    def _give_back(self, tls: ssl.SSLContext | None, conn: Connection,
                   loop: asyncio.AbstractEventLoop) -> None:
        if not conn.reusable or conn.closed or conn.generation != self.connector.generation:
            conn.abort()
            return
        conn.idle_since = loop.time()
        self._idle.setdefault(tls, []).append(conn)
        if self._sweeper is None:
            self._sweeper = loop.call_later(self.connector.keepalive / 2, self._sweep)

    def _sweep(self) -> None:
        """Close what has been idle for longer than the keep-alive time."""
        loop = self._loop()
        now, self._sweeper = loop.time(), None
        keepalive = self.connector.keepalive
        for tls, idle in list(self._idle.items()):
            keep = [c for c in idle if not c.closed and now - c.idle_since < keepalive]
            for conn in idle:
                if conn not in keep:
                    conn.abort()
            if keep:
                self._idle[tls] = keep
            else:
                del self._idle[tls]
        if self._idle:
            self._sweeper = loop.call_later(keepalive / 2, self._sweep)
        elif self.on_empty is not None:
            self.on_empty()

    def close(self) -> None:
        """Close every idle connection (new rules, or the end); those in use are not kept
        once the connector's generation has moved on."""
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
