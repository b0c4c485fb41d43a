"""hookd.delivery.recording: whole answers kept for `hookd send`, the daemon's connections
unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

from hookd.delivery.client import Connector
from hookd.delivery.connection import Connection
from hookd.delivery.recording import Answer, Recorder, RecordingConnection


class Transport:
    def write(self, data: bytes) -> None:
        pass

    def abort(self) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return None


def answer(recorder: Recorder, *chunks: bytes, cap: int = 100) -> None:
    loop = asyncio.new_event_loop()
    try:
        conn = recorder.connection(loop, 0)
        conn.connection_made(Transport())  # type: ignore[arg-type]
        conn.send(b"GET / HTTP/1.1\r\n\r\n", cap, loop.time() + 5)
        for chunk in chunks:
            conn.data_received(chunk)
    finally:
        loop.close()


def test_headers_are_kept_not_those_of_an_interim_answer() -> None:
    recorder = Recorder()
    answer(recorder, b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n",
           b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 4\r\n"
           b"X-A: b\r\n\r\nbusy")
    assert recorder.answers == [Answer(503, (("Retry-After", "7"), ("Content-Length", "4"),
                                             ("X-A", "b")), b"busy", False)]


def test_a_body_over_the_cap_is_cut_and_said_so() -> None:
    recorder = Recorder()
    answer(recorder, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", cap=4)
    assert recorder.last == Answer(200, (("Content-Length", "10"),), b"0123", True)


def test_the_daemon_connects_with_plain_connections() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return []

    assert Connector(resolve).protocol is Connection
    assert not issubclass(Connection, RecordingConnection)
