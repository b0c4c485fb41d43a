"""A lean HTTP/1.1 client for deliveries: keep-alive connections per endpoint, parsed by
httptools (llhttp, Node's parser).

Why not aiohttp's client: it spent about 107 µs of CPU per request here, more than the rest
of a delivery (decode, match, render, sign, log) put together; this does a request in
about 25 µs (`python -m bench.http_client`: 9,300 against 39,800 requests/s). It does
only what a webhook needs: one request at a time per connection, Content-Length request
bodies, answers of any framing (length, chunked, until close) read up to a cap; no
redirects, cookies or compression. Where to connect is decided by the caller's resolver
(the SSRF guard). Each endpoint keeps its own idle connections (`Connections`, owned by
its `Endpoint`); a `Connector` shared by all opens them. An endpoint reached through a
proxy is an endpoint of its own (`... via PROXY`: its connections are never mixed with
direct ones), opened by hookd.delivery.tunnel.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Mapping

from hookd.delivery.connection import Connection, Reply, StaleConnection
from hookd.delivery.ssrf import system_lookup
from hookd.delivery.tunnel import open_via
from hookd.delivery.wire import Response, encode_request
from hookd.loops import RunningLoop
from hookd.requests.proxy import Proxy
from hookd.requests.target import Target

__all__ = ["Call", "ConnectionFactory", "Connections", "Connector", "Reply", "Resolve"]


Resolve = Callable[[str, int], Awaitable[list[str]]]
ConnectionFactory = Callable[[asyncio.AbstractEventLoop, int], Connection]  # (loop, generation)


class Connector:
    """How connections are opened: where to (the caller's resolver: the SSRF guard) and
    under which rules (`generation`: a connection opened under older rules is not kept)."""

    def __init__(self, resolve: Resolve, keepalive: float = 30.0,
                 protocol: ConnectionFactory = Connection,
                 proxy_lookup: Resolve = system_lookup) -> None:
        self.resolve = resolve
        self.keepalive = keepalive
        self.generation = 0
        self.protocol = protocol  # what each connection is: `hookd send` keeps whole answers
        self.proxy_lookup = proxy_lookup  # a proxy's own address: trusted, not guarded

    async def connect(self, target: Target, tls: ssl.SSLContext | None,
                      loop: asyncio.AbstractEventLoop, proxy: Proxy | None = None
                      ) -> Connection:
        generation = self.generation  # the rules these addresses are checked under
        addresses = await self.resolve(target.host, target.port)
        if proxy is not None:  # the destination passed the guard; the proxy resolves it
            return await open_via(proxy, target, tls, loop, generation, self.proxy_lookup)
        error: OSError | None = None
        for address in addresses:
            try:
                _, conn = await loop.create_connection(
                    lambda: self.protocol(loop, generation), address, target.port,
                    ssl=tls, server_hostname=target.host if tls is not None else None)
                return conn
            except OSError as exc:
                error = exc
        raise error or OSError(f"no address for {target.host}")


class Connections:
    """The idle keep-alive connections of one endpoint, per TLS settings, most recent
    first; `on_empty` is told when the last one is swept away. With `proxy`, every
    connection goes through it."""

    def __init__(self, connector: Connector,
                 on_empty: Callable[[], None] | None = None,
                 proxy: Proxy | None = None) -> None:
        self.connector = connector
        self.on_empty = on_empty
        self.proxy = proxy
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
        if self.proxy is not None and tls is None:  # plain HTTP: the absolute URL
            headers = dict(headers)  # (inside a CONNECT tunnel: as sent directly)
            target = self.proxy.absolute(target, headers)
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
            conn = await self.connector.connect(target, tls, loop, self.proxy)
        try:
            response = await conn.send(data, cap, deadline)
        except BaseException:
            conn.abort()
            raise
        self._give_back(tls, conn, loop)
        return response

    def begin(self, method: str, target: Target, headers: Mapping[str, str], body: bytes,
              timeout: float, cap: int, tls: ssl.SSLContext | None, reply: Reply) -> Call:
        """`request` without a coroutine: `reply` is told how it ended, once, unless the
        returned Call is cancelled first. On a kept-alive connection (the common case)
        nothing but the connection's own callbacks runs: no task, no future; a new
        connection is opened by a task (once per connection)."""
        written = target  # (the call connects to `target`)
        if self.proxy is not None and tls is None:  # plain HTTP: the absolute URL
            headers = dict(headers)  # (inside a CONNECT tunnel: as sent directly)
            written = self.proxy.absolute(target, headers)
        try:
            data = encode_request(method, written, headers, body)
        except ValueError as exc:  # told from the loop, not from within the caller
            call = Call(self, target, tls, cap, timeout, reply)
            self._loop().call_soon(call.end, None, exc)
            return call
        return self.send(data, target, timeout, cap, tls, reply)

    def send(self, data: bytes, target: Target, timeout: float, cap: int,
             tls: ssl.SSLContext | None, reply: Reply) -> Call:
        """`begin` with the request's bytes already made (by encode_request, or framed
        from the hook's compiled head: hookd.requests.head); `target`: where to."""
        call = Call(self, target, tls, cap, timeout, reply)
        loop = self._loop()
        now = loop.time()
        call.data, call.deadline = data, now + timeout
        conn = self._take(tls, now)
        if conn is None:
            call.connect(loop)
        else:
            call.conn = conn
            conn.send_to(data, cap, call.deadline, call.answered)
        return call

    def use(self, proxy: Proxy) -> None:
        """Go through `proxy` from now on (a reload changed its credentials): the
        connections opened with the old ones are closed."""
        if proxy != self.proxy:
            self.close()
            self.proxy = proxy

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


class Call:
    """One request under way through `Connections.begin`: on a kept-alive connection, or
    on a new one (a task connects, then sends); a kept-alive one the peer had closed is
    tried once more on a new one, as `request` does."""

    __slots__ = ("cap", "conn", "data", "deadline", "pool", "reply", "target", "task", "timeout",
                 "tls")

    def __init__(self, pool: Connections, target: Target, tls: ssl.SSLContext | None,
                 cap: int, timeout: float, reply: Reply | None) -> None:
        self.pool, self.target, self.tls, self.cap, self.timeout = pool, target, tls, cap, timeout
        self.reply = reply  # None once told, or cancelled
        self.conn: Connection | None = None
        self.task: asyncio.Task[Response] | None = None
        self.data = b""
        self.deadline = 0.0

    def answered(self, response: Response | None, exc: BaseException | None) -> None:
        conn, self.conn = self.conn, None
        reply = self.reply
        if conn is None or reply is None:
            return
        if exc is None:
            pool = self.pool
            pool._give_back(self.tls, conn, pool._loop())
        elif isinstance(exc, StaleConnection):  # the peer closed it while idle: once more
            conn.abort()
            self.connect(self.pool._loop())
            return
        else:
            conn.abort()
        self.reply = None  # (`end`, told once)
        reply(response, exc)

    def connect(self, loop: asyncio.AbstractEventLoop) -> None:
        self.task = task = loop.create_task(self._connect_and_send(loop))
        task.add_done_callback(self._sent)

    async def _connect_and_send(self, loop: asyncio.AbstractEventLoop) -> Response:
        async with asyncio.timeout_at(self.deadline):
            conn = await self.pool.connector.connect(self.target, self.tls, loop,
                                                     self.pool.proxy)
        try:
            response = await conn.send(self.data, self.cap, self.deadline)
        except BaseException:
            conn.abort()
            raise
        self.pool._give_back(self.tls, conn, loop)
        return response

    def _sent(self, task: asyncio.Task[Response]) -> None:
        self.task = None
        if task.cancelled():
            return
        exc = task.exception()
        self.end(None if exc is not None else task.result(), exc)

    def end(self, response: Response | None, exc: BaseException | None) -> None:
        reply, self.reply = self.reply, None
        if reply is not None:
            reply(response, exc)

    def cancel(self) -> None:
        """Nothing more is sent and `reply` is not told: the connection in use is closed."""
        self.reply = None
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.abort()
        if self.task is not None:
            self.task.cancel()
