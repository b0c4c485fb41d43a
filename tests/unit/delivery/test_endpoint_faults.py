"""Endpoint faults, one table: a raw TCP server on 127.0.0.1 misbehaves on cue and each
attempt ends as SPEC §3 says (delivered, retried, failed, gone)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from hookd.config import DeliveryConfig
from hookd.delivery.retries import ErrorKind, Verdict
from hookd.delivery.sender import HttpSender
from hookd.requests.render import Request

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
TIMEOUT = 0.5
HANG_GUARD = 30.0  # far beyond TIMEOUT: only a hang trips it


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    await reader.readexactly(length)


def answer(status: int, reason: str, *headers: str, body: bytes = b"no") -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}",
                 "Connection: close", *headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
    return script


async def reset_mid_response(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
    await writer.drain()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()  # RST, not FIN


async def slow_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    await asyncio.sleep(TIMEOUT * 4)


async def slow_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    for _ in range(20):
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(TIMEOUT / 4)


async def endless_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (4096, b"y" * 4096)
    try:
        for _ in range(10_000):  # 40 MB if nobody stops reading; hookd stops at 1 KiB
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass


async def invalid_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"THIS IS NOT HTTP\r\n\r\n")
    await writer.drain()


@dataclass(frozen=True)
class Case:
    script: Script | None  # None: nothing listens (connection refused)
    verdict: Verdict
    kind: ErrorKind | None
    status: int | None = None
    retry_after: float | None = None


CASES = {
    "500": Case(answer(500, "Internal Server Error"), Verdict.RETRY, ErrorKind.HTTP_STATUS, 500),
    "503-retry-after": Case(answer(503, "Unavailable", "Retry-After: 7"), Verdict.RETRY,
                            ErrorKind.HTTP_STATUS, 503, 7.0),
    "429": Case(answer(429, "Too Many Requests"), Verdict.RETRY, ErrorKind.HTTP_STATUS, 429),
    "408": Case(answer(408, "Request Timeout"), Verdict.RETRY, ErrorKind.HTTP_STATUS, 408),
    "301-not-followed": Case(answer(301, "Moved", "Location: http://127.0.0.1:1/elsewhere"),
                             Verdict.FAIL, ErrorKind.HTTP_STATUS, 301),
    "400": Case(answer(400, "Bad Request"), Verdict.FAIL, ErrorKind.HTTP_STATUS, 400),
    "404": Case(answer(404, "Not Found"), Verdict.FAIL, ErrorKind.HTTP_STATUS, 404),
    "410": Case(answer(410, "Gone"), Verdict.GONE, ErrorKind.HTTP_STATUS, 410),
    "200": Case(answer(200, "OK", body=b"ok"), Verdict.DELIVERED, None, 200),
    "connection-refused": Case(None, Verdict.RETRY, ErrorKind.CONNECT),
    "reset-mid-response": Case(reset_mid_response, Verdict.RETRY, ErrorKind.CONNECT),
    "slow-headers": Case(slow_headers, Verdict.RETRY, ErrorKind.TIMEOUT),
    "slow-body": Case(slow_body, Verdict.RETRY, ErrorKind.TIMEOUT),
    "endless-body": Case(endless_body, Verdict.DELIVERED, None, 200),
    "invalid-http": Case(invalid_http, Verdict.RETRY, ErrorKind.CONNECT),
}


@pytest.fixture
async def sender() -> AsyncIterator[HttpSender]:
    s = HttpSender(DeliveryConfig.model_validate(
        {"allow_networks": ["127.0.0.0/8"], "max_response_bytes": 1024}))
    await s.start()
    yield s
    await s.close()


async def _serve(script: Script | None) -> tuple[int, asyncio.Server | None]:
    if script is None:
        with socket.socket() as sock:  # a port nothing listens on
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1], None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server.sockets[0].getsockname()[1], server


@pytest.mark.parametrize("name", list(CASES))
async def test_each_endpoint_fault_ends_as_the_spec_says(sender: HttpSender, name: str) -> None:
    case = CASES[name]
    port, server = await _serve(case.script)
    url = f"http://127.0.0.1:{port}/hook"
    request = Request("h", "POST", url, (("content-type", "application/json"),), b"{}", "msg_1")
    try:
        # nothing hangs past the hook's timeout: wait_for is a generous guard, not a speed check
        outcome = await asyncio.wait_for(sender.attempt(request, None, TIMEOUT), HANG_GUARD)
        # the sender still works afterwards (a half-read connection is not reused)
        again = await asyncio.wait_for(sender.attempt(request, None, TIMEOUT), HANG_GUARD)
    finally:
        if server is not None:
            server.close()
    assert (outcome.verdict, outcome.kind, outcome.status) == (case.verdict, case.kind,
                                                               case.status), outcome
    assert outcome.retry_after == case.retry_after
    assert (again.verdict, again.kind, again.status) == (outcome.verdict, outcome.kind,
                                                         outcome.status)
