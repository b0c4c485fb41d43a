"""Connections through an HTTP proxy: to the proxy itself for plain-HTTP endpoints (the
request then names the absolute URL: hookd.requests.proxy.Proxy.absolute), and for https
endpoints a CONNECT tunnel, then TLS to the endpoint inside it (`loop.start_tls`), so the
proxy sees the host and port but never the request, and the endpoint's certificate is
checked by hookd as on a direct connection.

Written by hand, beside the hand-written client (hookd.delivery.client says why it is
hookd's own): one request and the head of one answer, read once per new connection."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

from hookd.delivery.connection import MAX_HEAD, Connection, ProtocolError
from hookd.delivery.ssrf import literal_ip
from hookd.requests.proxy import Proxy
from hookd.requests.target import Target

Lookup = Callable[[str, int], Awaitable[list[str]]]


class ProxyRefused(ProtocolError):
    """The proxy answered CONNECT with a status other than 2xx."""

    def __init__(self, proxy: str, destination: str, status: int, reason: str) -> None:
        self.proxy, self.destination, self.status, self.reason = proxy, destination, status, reason
        super().__init__(f"proxy {proxy} answered CONNECT {destination} with {status} {reason}")


class _Handshake(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT: its status line and headers, nothing more."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.head = bytearray()
        self.answer: asyncio.Future[bytes] = loop.create_future()

    def data_received(self, data: bytes) -> None:
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if self.answer.done():
            return
        if end >= 0:
            self.answer.set_result(bytes(self.head[:end]))
        elif len(self.head) > MAX_HEAD:
            self.answer.set_exception(ProtocolError(f"proxy answer head over {MAX_HEAD} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(ProtocolError(
                "the proxy closed the connection before answering CONNECT"
                + (f": {exc}" if exc else "")))


def _status(head: bytes) -> tuple[int, str]:
    """`HTTP/1.1 200 Connection established` → (200, 'Connection established')."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not (code.isascii() and code.isdigit()):
        raise ProtocolError(f"the proxy's answer to CONNECT is not HTTP: {line[:100]!r}")
    return int(code), reason.strip()


def _authority(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{host}:{target.port}"


def _connect(proxy: Proxy, authority: str) -> bytes:
    auth = (f"Proxy-Authorization: {proxy.authorization}\r\n"
            if proxy.authorization is not None else "")
    return f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{auth}\r\n".encode()


async def _open(proxy: Proxy, loop: asyncio.AbstractEventLoop,
                factory: Callable[[], asyncio.Protocol], lookup: Lookup
                ) -> tuple[asyncio.Transport, asyncio.Protocol]:
    """A connection to the proxy (its address is operator config: not the SSRF guard's)."""
    ip = literal_ip(proxy.host)
    addresses = [ip] if ip is not None else await lookup(proxy.host, proxy.port)
    error: OSError | None = None
    for address in addresses:
        try:
            transport, protocol = await loop.create_connection(factory, address, proxy.port)
            return transport, protocol
        except OSError as exc:
            error = type(exc)(exc.errno, f"proxy {proxy.shown}: {exc.strerror or exc}")
    raise error or OSError(f"proxy {proxy.shown}: no address for {proxy.host}")


async def open_via(proxy: Proxy, target: Target, tls: ssl.SSLContext | None,
                   loop: asyncio.AbstractEventLoop, generation: int,
                   lookup: Lookup) -> Connection:
    """A connection to `target` through `proxy`: plain (the caller writes absolute-form
    requests) or, with `tls`, a CONNECT tunnel with TLS to the endpoint inside. Raises
    OSError (the proxy refused the connection, TLS), ProxyRefused, ProtocolError."""
    if tls is None:
        _, conn = await _open(proxy, loop, lambda: Connection(loop, generation), lookup)
        assert isinstance(conn, Connection)
        return conn
    transport, handshake = await _open(proxy, loop, lambda: _Handshake(loop), lookup)
    assert isinstance(handshake, _Handshake)
    try:
        authority = _authority(target)
        transport.write(_connect(proxy, authority))
        status, reason = _status(await handshake.answer)
        if not 200 <= status < 300:
            raise ProxyRefused(proxy.shown, authority, status, reason)
        conn = Connection(loop, generation)
        secure = await loop.start_tls(transport, conn, tls, server_hostname=target.host)
        if secure is None:  # (the loop closed meanwhile)
            raise ProtocolError("TLS through the proxy's tunnel was not set up")
        conn.connection_made(secure)
        return conn
    except BaseException:
        transport.abort()
        raise


async def probe(proxy: Proxy, target: Target, lookup: Lookup) -> str:
    """`hookd check --connect`'s test of the way through `proxy`: for an https endpoint a
    CONNECT tunnel asked for and closed again (no TLS, no request: nothing reaches the
    endpoint's application); for plain HTTP, that the proxy takes connections. What was
    seen; raises as open_via does."""
    loop = asyncio.get_running_loop()
    if target.scheme != "https":
        transport, _ = await _open(proxy, loop, asyncio.Protocol, lookup)
        transport.close()
        return "the proxy accepts connections"
    transport, handshake = await _open(proxy, loop, lambda: _Handshake(loop), lookup)
    assert isinstance(handshake, _Handshake)
    try:
        authority = _authority(target)
        transport.write(_connect(proxy, authority))
        status, reason = _status(await handshake.answer)
    finally:
        transport.close()
    if not 200 <= status < 300:
        raise ProxyRefused(proxy.shown, authority, status, reason)
    return f"CONNECT {authority} answered {status} {reason}".rstrip()
