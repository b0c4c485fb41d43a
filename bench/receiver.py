"""A webhook receiver for the demo and the benchmarks, in its own process, on 127.0.0.1.

It answers every POST/PUT/GET with 200 (or, on request, with injected failures), checks
Standard Webhooks signatures against the secrets it is given, and keeps counts that
``GET /__stats`` returns as JSON (``POST /__reset`` clears them). It is a small HTTP/1.1
server on asyncio's protocol API (keep-alive, Content-Length bodies) rather than a web
framework, so that on a 2-core machine it leaves the CPU to what is being measured.

    python -m bench.receiver [--port 0] [--secret whsec_...]... [--print]
                             [--fail-rate 0.02] [--reject-rate 0.002] [--blackhole]

On start it prints one JSON line: {"port": N, "blackhole_port": M or null}. With
``--print`` it then prints one line per delivery: time, method, path, status, signature.
A request may carry ``x-sent-at`` (epoch seconds): the receiver records now - sent_at
as that delivery's latency, at its first arrival (a redelivery of a webhook-id already
answered 200 adds none).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import random
import signal
import socket
import sys
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_HEAD = 64 * 1024
MAX_BODY = 8 * 1024 * 1024
TOLERANCE = 300  # seconds a webhook-timestamp may be off (Standard Webhooks)


def secret_key(secret: str) -> bytes:
    """A `whsec_` secret's key bytes (base64, padding optional)."""
    text = secret.strip().removeprefix("whsec_")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def verify(keys: list[bytes], headers: dict[bytes, bytes], body: bytes,
           now: float) -> str:
    """'ok', 'unsigned', or why the signature is wrong."""
    sig = headers.get(b"webhook-signature")
    if sig is None:
        return "unsigned"
    msg_id, stamp = headers.get(b"webhook-id"), headers.get(b"webhook-timestamp")
    if not msg_id or not stamp or not stamp.isdigit():
        return "bad:headers"
    if abs(now - int(stamp)) > TOLERANCE:
        return "bad:timestamp"
    signed = msg_id + b"." + stamp + b"." + body
    given = {part.partition(b",")[2] for part in sig.split() if part.startswith(b"v1,")}
    for key in keys:
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
        if any(hmac.compare_digest(expected, g) for g in given):
            return "ok"
    return "bad:mismatch" if keys else "unverified"


@dataclass
class Stats:
    count: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    signatures: dict[str, int] = field(default_factory=dict)
    paths: dict[str, int] = field(default_factory=dict)
    ids: set[bytes] = field(default_factory=set)
    duplicates: int = 0
    latencies: array = field(default_factory=lambda: array("d"))  # type: ignore[type-arg]
    arrivals: array = field(default_factory=lambda: array("d"))  # type: ignore[type-arg]

    def as_json(self) -> dict[str, Any]:
        """Counts only: polled often, so cheap. The latencies and arrival times themselves
        come from ``/__latencies`` and ``/__arrivals`` (native doubles)."""
        return {"count": self.count, "first_at": self.first_at, "last_at": self.last_at,
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "signatures": self.signatures, "paths": self.paths,
                "duplicates": self.duplicates, "latencies": len(self.latencies),
                "arrivals": len(self.arrivals)}


class Receiver:
    def __init__(self, keys: list[bytes], *, show: bool = False, fail_rate: float = 0.0,
                 reject_rate: float = 0.0, seed: int = 1, keep_arrivals: bool = False) -> None:
        self.keys = keys
        self.show = show
        self.fail_rate, self.reject_rate = fail_rate, reject_rate
        self.rng = random.Random(seed)
        self.keep_arrivals = keep_arrivals
        self.stats = Stats()
        self.out = sys.stdout

    def handle(self, method: bytes, target: bytes, headers: dict[bytes, bytes],
               body: bytes) -> tuple[int, bytes]:
        path = target.split(b"?", 1)[0].decode("latin-1")
        if path == "/__stats":
            return 200, orjson.dumps(self.stats.as_json())
        if path == "/__arrivals":
            return 200, self.stats.arrivals.tobytes()
        if path == "/__latencies":
            return 200, self.stats.latencies.tobytes()
        if path == "/__reset" and method == b"POST":
            self.stats = Stats()
            return 200, b"{}"
        now = time.time()
        st = self.stats
        st.count += 1
        if not st.first_at:
            st.first_at = now
        st.last_at = now
        if self.keep_arrivals:
            st.arrivals.append(now)
        sent_at = headers.get(b"x-sent-at")
        # a redelivery (same webhook-id, after a crash or a rebalance) is not a new latency:
        # each delivery's latency is its first arrival's
        if sent_at and headers.get(b"webhook-id", b"") not in st.ids:
            with contextlib.suppress(ValueError):
                st.latencies.append(now - float(sent_at))
        verdict = verify(self.keys, headers, body, now) if self.keys or b"webhook-signature" \
            in headers else "unsigned"
        st.signatures[verdict] = st.signatures.get(verdict, 0) + 1
        st.paths[path] = st.paths.get(path, 0) + 1
        status = 200
        if self.fail_rate or self.reject_rate:
            roll = self.rng.random()
            if roll < self.fail_rate:
                status = 503
            elif roll < self.fail_rate + self.reject_rate:
                status = 422
        if status == 200:
            msg_id = headers.get(b"webhook-id", b"")
            if msg_id in st.ids:
                st.duplicates += 1
            elif msg_id:
                st.ids.add(msg_id)
        st.statuses[status] = st.statuses.get(status, 0) + 1
        if self.show:
            clock = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
            sig = {"ok": "signature ok", "unsigned": "unsigned"}.get(verdict, verdict.upper())
            mark = "ok " if status == 200 else f"{status}"
            self.out.write(f"{clock}  {mark} {method.decode():<4} {path[:48]:<48} "
                           f"{sig}  {headers.get(b'webhook-id', b'-').decode()[:16]}\n")
            self.out.flush()
        return status, b"ok" if status == 200 else b"try again" if status == 503 else b"no"


class _Http(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and Content-Length bodies: all that webhook senders use."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.buf = bytearray()
        self.head: tuple[bytes, bytes, dict[bytes, bytes], bool] | None = None
        self.need = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None:
            if self.head is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > MAX_HEAD:
                        self._error(431)
                    return
                lines = bytes(self.buf[:end]).split(b"\r\n")
                del self.buf[:end + 4]
                try:
                    method, target, version = lines[0].split(b" ", 2)
                except ValueError:
                    return self._error(400)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
                    return self._error(411)  # senders of webhooks give a Content-Length
                try:
                    self.need = int(headers.get(b"content-length", b"0"))
                except ValueError:
                    return self._error(400)
                if not 0 <= self.need <= MAX_BODY:
                    return self._error(413)
                keep = version == b"HTTP/1.1" and headers.get(b"connection", b"").lower() \
                    != b"close"
                self.head = (method, target, headers, keep)
            if len(self.buf) < self.need:
                return
            body = bytes(self.buf[:self.need])
            del self.buf[:self.need]
            method, target, headers, keep = self.head
            self.head = None
            status, payload = self.receiver.handle(method, target, headers, body)
            self._respond(status, payload, keep)

    def _respond(self, status: int, payload: bytes, keep: bool) -> None:
        assert self.transport is not None
        reason = {200: "OK", 422: "Unprocessable Entity", 503: "Service Unavailable"}.get(
            status, "Error")
        extra = b"" if keep else b"Connection: close\r\n"
        ctype = b"application/json" if payload[:1] in (b"{", b"[") else b"text/plain"
        self.transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
                             % (status, reason.encode(), ctype, len(payload), extra) + payload)
        if not keep:
            self.transport.close()
            self.transport = None

    def _error(self, status: int) -> None:
        self._respond(status, b"bad request", keep=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


class _BlackHole(asyncio.Protocol):
    """Accepts the connection, reads whatever comes, never answers."""

    def data_received(self, data: bytes) -> None:
        pass


async def serve(args: argparse.Namespace) -> None:
    keys = [secret_key(s) for s in args.secret]
    for path in args.secret_file:
        with open(path) as fh:
            keys.append(secret_key(fh.read()))
    receiver = Receiver(keys, show=args.print, fail_rate=args.fail_rate,
                        reject_rate=args.reject_rate, seed=args.seed,
                        keep_arrivals=args.arrivals)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Http(receiver), "127.0.0.1", args.port,
                                      backlog=1024, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    hole = None
    hole_port = None
    if args.blackhole:
        hole = await loop.create_server(_BlackHole, "127.0.0.1", 0, backlog=1024)
        hole_port = hole.sockets[0].getsockname()[1]
    print(orjson.dumps({"port": port, "blackhole_port": hole_port}).decode(), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    deadline = args.max_seconds
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), deadline)  # bounded: never outlives its run
    server.close()
    if hole is not None:
        hole.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.receiver", description=__doc__.split(
        "\n", 1)[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--secret", action="append", default=[], help="whsec_ secret (repeatable)")
    p.add_argument("--secret-file", action="append", default=[],
                   help="file holding a whsec_ secret (repeatable)")
    p.add_argument("--print", action="store_true", help="print one line per delivery")
    p.add_argument("--fail-rate", type=float, default=0.0, help="share answered 503")
    p.add_argument("--reject-rate", type=float, default=0.0, help="share answered 422")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--blackhole", action="store_true",
                   help="also listen on a port that accepts and never answers")
    p.add_argument("--arrivals", action="store_true", help="keep every arrival time")
    p.add_argument("--max-seconds", type=float, default=3600.0,
                   help="exit after this long whatever happens (default 1 h)")
    args = p.parse_args(argv)
    try:
        import uvloop

        uvloop.run(serve(args))
    except ImportError:  # pragma: no cover
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
