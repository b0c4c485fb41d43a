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
import ssl
from collections.abc import Awaitable, Callable, Mapping

from hookd.delivery.connection import Connection, StaleConnection
from hookd.delivery.wire import Response, encode_request
from hookd.loops import RunningLoop
from hookd.requests.target import Target

__all__ = ["Connections", "Connector", "Resolve"]


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
