"""hookd.delivery.client against raw TCP servers on 127.0.0.1 that answer byte for byte as scripted
(on asyncio's loop and on uvloop: see conftest)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from hookd.delivery.client import Connections, Connector
from hookd.delivery.connection import MAX_HEAD, ProtocolError
from hookd.requests.target import target_of

Answer = Callable[[bytes], bytes | None]  # request bytes -> raw answer (None: close)


async def loopback(host: str, port: int) -> list[str]:
    assert host in ("127.0.0.1", "localhost")
    return ["127.0.0.1"]


def ok(body: bytes = b"ok", *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body), b"".join(h + b"\r\n" for h in extra), body)


@dataclass
class Server:
    """Answers each request with `answer(request)`; counts connections and requests."""

    answer: Answer
    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    close_after_answer: bool = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                raw = self.answer(request)
                if raw is None:
                    break
                writer.write(raw)
                await writer.drain()
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []
    states: list[Server] = []

    async def start(answer: Answer) -> Server:
        state = Server(answer)
        server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
        servers.append(server)
        states.append(state)
        state.port = server.sockets[0].getsockname()[1]
        return state

    yield start
    for server in servers:
        server.close()
    for state in states:
        for writer in state.writers:
            writer.transport.abort()
    await asyncio.sleep(0.01)  # let the handlers see it and end


@pytest.fixture
async def pool() -> AsyncIterator[Connections]:
    p = Connections(Connector(loopback, keepalive=30.0))
    yield p
    p.close()


async def post(pool: Connections, url: str, body: bytes = b"{}", timeout: float = 2.0,
               cap: int = 1024) -> tuple[int, bytes, bool, str | None]:
    r = await pool.request("POST", target_of(url), {"content-type": "application/json"}, body,
                           timeout, cap, None)
    return r.status, r.body, r.truncated, r.retry_after


async def test_keep_alive_reuses_one_connection(pool: Connections,
                                                serve: Callable[..., Any]) -> None:
    server = await serve(lambda _req: ok(b"fine"))
    for i in range(5):
        assert await post(pool, server.url, b'{"n": %d}' % i) == (200, b"fine", False, None)
    assert server.connections == 1
    assert len(server.requests) == 5
    assert server.requests[0].startswith(b"POST /hook HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in server.requests[0]
    assert server.requests[3].endswith(b'Content-Length: 8\r\n\r\n{"n": 3}')


async def test_a_connection_the_peer_closed_while_idle_is_replaced(
        pool: Connections, serve: Callable[..., Any]) -> None:
    server = await serve(lambda _req: ok())
    assert (await post(pool, server.url))[0] == 200
    for writer in server.writers:  # the server drops the kept-alive connection
        writer.transport.abort()
    await asyncio.sleep(0.05)
    assert (await post(pool, server.url))[0] == 200
    assert server.connections == 2


async def test_connection_close_is_honoured(pool: Connections, serve: Callable[..., Any]) -> None:
    server = await serve(lambda _req: ok(b"x", b"Connection: close"))
    for _ in range(3):
        assert (await post(pool, server.url))[0] == 200
    assert server.connections == 3


@pytest.mark.parametrize(("raw", "status", "body"), [
    (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
     201, b"abcde"),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok",
     202, b"ok"),
    (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b""),
    (b"HTTP/1.0 500 Oops\r\n\r\nuntil the close", 500, b"until the close"),
])
async def test_answer_framings(pool: Connections, serve: Callable[..., Any], raw: bytes,
                               status: int, body: bytes) -> None:
    server = await serve(lambda _req: raw)
    server.close_after_answer = True
    assert (await post(pool, server.url))[:2] == (status, body)


async def test_retry_after_is_read(pool: Connections, serve: Callable[..., Any]) -> None:
    server = await serve(lambda _req: b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\n"
                                      b"Content-Length: 0\r\n\r\n")
    assert await post(pool, server.url) == (503, b"", False, "7")


async def test_a_long_body_is_cut_at_the_cap_and_the_connection_dropped(
        pool: Connections, serve: Callable[..., Any]) -> None:
    server = await serve(lambda _req: ok(b"z" * 5000))
    for _ in range(2):
        assert await post(pool, server.url, cap=100) == (200, b"z" * 100, True, None)
    assert server.connections == 2


@pytest.mark.parametrize(("raw", "match"), [
    (b"NOT HTTP AT ALL\r\n\r\n", "invalid HTTP"),
    (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (MAX_HEAD + 10), "head over"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "closed in the middle"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
     "switched protocols"),
])
async def test_broken_answers_are_protocol_errors(pool: Connections, serve: Callable[..., Any],
                                                  raw: bytes, match: str) -> None:
    server = await serve(lambda _req: raw)
    server.close_after_answer = True
    with pytest.raises(ProtocolError, match=match):
        await post(pool, server.url)


async def test_no_answer_in_time_is_a_timeout_and_the_connection_is_dropped(
        pool: Connections, serve: Callable[..., Any]) -> None:
    answers = iter([None, ok()])
    hold = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if next(answers) is None:
            await hold.wait()  # never answers
        else:
            await reader.readexactly(2)
            writer.write(ok())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    try:
        with pytest.raises(TimeoutError):
            await post(pool, url, timeout=0.2)
        assert (await post(pool, url))[0] == 200  # on a new connection
    finally:
        hold.set()
        server.close()


async def test_connection_refused_is_an_os_error(pool: Connections) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(OSError):
        await post(pool, f"http://127.0.0.1:{port}/")


async def test_reset_closes_idle_connections_and_retires_busy_ones(
        pool: Connections, serve: Callable[..., Any]) -> None:
    server = await serve(lambda _req: ok())
    await post(pool, server.url)
    pool.connector.generation += 1  # e.g. allow_networks changed: nothing checked under
    pool.close()                    # the old rules is reused
    await post(pool, server.url)
    assert server.connections == 2


async def test_idle_connections_expire(serve: Callable[..., Any]) -> None:
    emptied: list[bool] = []
    pool = Connections(Connector(loopback, keepalive=0.2), on_empty=lambda: emptied.append(True))
    server = await serve(lambda _req: ok())
    try:
        await post(pool, server.url)
        assert pool
        await asyncio.sleep(0.35)  # the sweep (every keepalive / 2) closed it
        assert not pool and emptied == [True]
        await post(pool, server.url)
        assert server.connections == 2
    finally:
        pool.close()


async def test_the_resolver_decides_where_to_connect(serve: Callable[..., Any]) -> None:
    asked: list[tuple[str, int]] = []
    server = await serve(lambda _req: ok())

    async def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        raise PermissionError("refused by the guard")

    pool = Connections(Connector(resolve))
    with pytest.raises(PermissionError):
        await post(pool, f"http://localhost:{server.port}/x")
    assert asked == [("localhost", server.port)]
    assert server.connections == 0
