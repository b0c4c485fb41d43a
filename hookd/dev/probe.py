"""A Kafka Metadata request by hand (no client library): is the broker answering yet?"""

from __future__ import annotations

import socket
import struct
from typing import Any

from hookd.dev.process import HOST


def _kafka_string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from(fmt, self._data, self._pos)
        self._pos += struct.calcsize(fmt)
        return values

    def int32(self) -> int:
        value: int = self.unpack(">i")[0]
        return value

    def string(self) -> str | None:
        (length,) = self.unpack(">h")
        if length < 0:
            return None
        raw = self._data[self._pos : self._pos + length]
        self._pos += length
        return raw.decode()


def metadata_probe(port: int, timeout: float) -> tuple[str | None, list[tuple[int, str, int]]]:
    """Send a Kafka ``Metadata`` v2 request; return ``(cluster_id, [(node, host, port)])``.

    Raises ``OSError`` / ``ValueError`` / ``struct.error`` while the broker does not (yet)
    answer correctly.
    """
    correlation_id = 0x7A5
    body = struct.pack(">hhi", 3, 2, correlation_id) + _kafka_string("hookd-devbroker")
    body += struct.pack(">i", 0)  # topics: empty array, we only need brokers + cluster id
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        if not 4 <= size <= 64 * 1024 * 1024:
            raise ValueError(f"implausible Kafka response size {size}")
        reader = _Reader(_recv_exact(sock, size))
    if (got := reader.int32()) != correlation_id:
        raise ValueError(f"correlation id mismatch: {got} != {correlation_id}")
    brokers: list[tuple[int, str, int]] = []
    for _ in range(reader.int32()):
        node_id = reader.int32()
        host = reader.string() or ""
        broker_port = reader.int32()
        reader.string()  # rack
        brokers.append((node_id, host, broker_port))
    cluster_id = reader.string()
    return cluster_id, brokers


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)
