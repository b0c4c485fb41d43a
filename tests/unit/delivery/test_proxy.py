"""Deliveries through a proxy (hookd.delivery.tunnel, client, sender), against a small
proxy written here on 127.0.0.1: it answers CONNECT as told, or opens the tunnel and
relays bytes to a real aiohttp server (plain and TLS). Run on asyncio's loop and uvloop.
The real proxy (tinyproxy): tests/integration/test_proxy.py."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import trustme
from aiohttp import web

from hookd.config import DeliveryConfig
from hookd.config.proxies import ProxyUrl
from hookd.delivery.circuit import host_trouble
from hookd.delivery.retries import ErrorKind, Verdict
from hookd.delivery.sender import HttpSender
from hookd.delivery.wire import encode_request
from hookd.events.decode import Event, Meta
from hookd.requests.proxy import NoProxy, Route, route_of
from hookd.requests.render import Request
from hookd.requests.target import target_of, tls_context
from tests.unit.requests.test_render import compile_one

LOOPBACK = ["127.0.0.0/8"]


@dataclass
class FakeProxy:
    """`answer`: the bytes every request gets (None: CONNECT opens the tunnel)."""

    answer: bytes | None = None
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                if self.answer is not None:
                    writer.write(self.answer)
                    if b"content-length" not in self.answer.lower():
                        break  # an answer without a body's length: the connection ends
                    length = _length(head)
                    await reader.readexactly(length)
                    continue
                assert head.startswith(b"CONNECT "), head
                host, _, port = head.split(b" ")[1].decode().rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def url(self, credentials: str = "") -> str:
        return f"http://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}"


def _length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[FakeProxy]:
    fake = FakeProxy()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        fake.tasks.add(task)
        try:
            await fake.handle(reader, writer)
        finally:
            fake.tasks.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    yield fake
    server.close()
    for task in list(fake.tasks):
        task.cancel()
    await asyncio.gather(*fake.tasks, return_exceptions=True)


@dataclass
class Origin:
    """A real aiohttp server, plain and TLS (a trustme CA), recording the headers seen."""

    port: int
    tls_port: int
    client_tls: ssl.SSLContext
    seen: list[dict[str, str]]


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = tls_context()
    ca.configure_trust(client_tls)
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append({k.lower(): v for k, v in request.headers.items()})
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runners, ports = [], []
    for ctx in (None, server_tls):
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx).start()
        runners.append(runner)
        ports.append(int(runner.addresses[0][1]))
    yield Origin(ports[0], ports[1], client_tls, seen)
    for runner in runners:
        await runner.cleanup()


async def _lookup(host: str, port: int) -> list[str]:
    """crm.test is data: checked by the guard, never connected to (the proxy is)."""
    return ["127.0.0.1"]


@pytest.fixture
async def sender() -> AsyncIterator[HttpSender]:
    made = HttpSender(DeliveryConfig(allow_networks=LOOPBACK), lookup=_lookup)
    yield made
    await made.close()


def _route(url: str, no_proxy: list[str] | None = None) -> Route:
    route = route_of(ProxyUrl(url), None, NoProxy(no_proxy or []))
    assert route is not None
    return route


def _request(url: str) -> Request:
    return Request("crm", "POST", url, (("content-type", "application/json"),), b"{}", "msg_1")


async def test_plain_http_goes_to_the_proxy_in_absolute_form_with_its_credentials(
        proxy: FakeProxy, sender: HttpSender) -> None:
    proxy.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    route = _route(proxy.url("ann:s%3Acret"))
    for _ in range(2):
        outcome = await sender.attempt(_request("http://crm.test:8080/calls?x=1"), None, 5.0,
                                       None, None, route)
        assert outcome.verdict is Verdict.DELIVERED
    assert proxy.heads[0].startswith(b"POST http://crm.test:8080/calls?x=1 HTTP/1.1\r\n")
    assert b"Proxy-Authorization: Basic YW5uOnM6Y3JldA==\r\n" in proxy.heads[0]  # ann:s:cret
    assert b"Host: crm.test:8080\r\n" in proxy.heads[0]
    assert proxy.connections == 1  # kept alive: the second request used the same one


async def test_a_compiled_hooks_request_in_absolute_form_as_encode_request_makes_it(
        proxy: FakeProxy, sender: HttpSender) -> None:
    """Its head, framed at load with the origin-form request line, is not what a proxy
    gets: the request goes by encode_request, absolute form and credentials."""
    proxy.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    route = _route(proxy.url("ann:s%3Acret"))
    hook = compile_one({"url": "http://crm.test:8080/calls", "headers": {"X-Id": "{{ id }}"}},
                       signing={"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
    request = hook.render(Event("Answered", "evt-1", {"id": "evt-1"}, Meta("t", 0, 1)))
    assert request.head is not None and request.head.start is not None
    outcome = await sender.attempt(request, hook.signer, 5.0, None, None, route)
    assert outcome.verdict is Verdict.DELIVERED
    sent = proxy.heads[0]
    found = re.search(rb"\r\nwebhook-timestamp: (\d+)\r\n", sent)
    assert found is not None
    headers = request.signed_headers(hook.signer, int(found[1]))
    target = route.proxy.absolute(target_of(request.url), headers)
    assert sent + request.body == encode_request("POST", target, headers, request.body)
    assert sent.startswith(b"POST http://crm.test:8080/calls HTTP/1.1\r\n")


async def test_https_through_a_connect_tunnel_with_tls_to_the_endpoint(
        proxy: FakeProxy, origin: Origin, sender: HttpSender) -> None:
    route = _route(proxy.url("ann:secret"))
    url = f"https://127.0.0.1:{origin.tls_port}/calls"
    for _ in range(2):
        outcome = await sender.attempt(_request(url), None, 5.0, origin.client_tls, None, route)
        assert outcome.verdict is Verdict.DELIVERED, outcome
    assert proxy.heads == [f"CONNECT 127.0.0.1:{origin.tls_port} HTTP/1.1\r\nHost: 127.0.0.1:"
                           f"{origin.tls_port}\r\nProxy-Authorization: Basic "
                           "YW5uOnNlY3JldA==\r\n\r\n".encode()]  # one tunnel, kept alive
    assert len(origin.seen) == 2
    assert all("proxy-authorization" not in h for h in origin.seen)  # the proxy's, not theirs


async def test_proxied_and_direct_connections_are_never_pooled_together(
        proxy: FakeProxy, origin: Origin, sender: HttpSender) -> None:
    url = f"https://127.0.0.1:{origin.tls_port}/calls"
    route = _route(proxy.url("ann:secret"))
    direct = await sender.attempt(_request(url), None, 5.0, origin.client_tls)
    proxied = await sender.attempt(_request(url), None, 5.0, origin.client_tls, None, route)
    again = await sender.attempt(_request(url), None, 5.0, origin.client_tls)
    assert direct.ok and proxied.ok and again.ok
    assert len(proxy.heads) == 1  # the direct ones never went through it
    assert sorted(e.name for e in sender.endpoints) == [
        f"https://127.0.0.1:{origin.tls_port}",
        f"https://127.0.0.1:{origin.tls_port} via http://***@127.0.0.1:{proxy.port}"]


async def test_no_proxy_sends_direct(proxy: FakeProxy, origin: Origin,
                                     sender: HttpSender) -> None:
    route = _route(proxy.url(), no_proxy=["127.0.0.0/8"])
    outcome = await sender.attempt(_request(f"http://127.0.0.1:{origin.port}/x"), None, 5.0,
                                   None, None, route)
    assert outcome.ok and proxy.connections == 0 and len(origin.seen) == 1


def closed_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# what the proxy answers to CONNECT -> the outcome: retried or not, and what it says
@pytest.mark.parametrize(("answer", "verdict", "says"), [
    (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", Verdict.FAIL,
     "with 407 Proxy Authentication Required: the proxy wants other credentials"),
    (b"HTTP/1.0 403 Forbidden\r\nContent-Type: text/html\r\n\r\n<html>no</html>", Verdict.FAIL,
     "with 403 Forbidden: the proxy's rules do not allow this destination"),
    (b"HTTP/1.1 405 Method Not Allowed\r\n\r\n", Verdict.FAIL, "with 405 Method Not Allowed"),
    (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", Verdict.RETRY,
     "with 502 Bad Gateway: the proxy could not reach the endpoint"),
    (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", Verdict.RETRY, "with 503"),
    (b"HTTP/1.1 504 Gateway Timeout\r\n\r\n", Verdict.RETRY,
     "with 504 Gateway Timeout: the proxy got no answer from the endpoint in time"),
    (b"", Verdict.RETRY, "the proxy closed the connection before answering CONNECT"),
    (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", Verdict.RETRY, "the proxy's answer to CONNECT is not HTTP"),
    (None, Verdict.RETRY, "ConnectionRefusedError: [Errno 111] proxy http://***@127.0.0.1:"),
])
async def test_what_a_proxy_refusal_comes_to(proxy: FakeProxy, sender: HttpSender,
                                             answer: bytes | None, verdict: Verdict,
                                             says: str) -> None:
    proxy.answer = answer
    port = proxy.port if answer is not None else closed_port()
    route = _route(f"http://ann:secret@127.0.0.1:{port}")
    outcome = await sender.attempt(_request("https://crm.test/calls"), None, 5.0, None, None,
                                   route)
    assert (outcome.verdict, outcome.kind, outcome.status) == (verdict, ErrorKind.CONNECT, None)
    assert says in outcome.message
    assert "secret" not in outcome.message and "YW5u" not in outcome.message
    # a refusal of the proxy's own (credentials, rules) says nothing about the endpoint
    assert host_trouble(outcome) is (verdict is Verdict.RETRY)


async def test_a_plain_request_the_proxy_answers_407_fails_saying_why(
        proxy: FakeProxy, sender: HttpSender) -> None:
    proxy.answer = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
    outcome = await sender.attempt(_request("http://crm.test/calls"), None, 5.0, None, None,
                                   _route(proxy.url("ann:wrong")))
    assert (outcome.verdict, outcome.status) == (Verdict.FAIL, 407)
    assert outcome.message == ("HTTP 407 from the proxy: the proxy wants other credentials "
                               "(the user and password in the proxy URL)")


async def test_the_ssrf_guard_checks_the_destination_before_the_proxy_is_asked(
        proxy: FakeProxy) -> None:
    """The destination is resolved and checked by hookd; the proxy's own address (here a
    loopback one) is operator config, not checked."""
    guarded = HttpSender(DeliveryConfig(allow_networks=[]))
    try:
        outcome = await guarded.attempt(_request("https://127.0.0.1:8443/x"), None, 5.0, None,
                                        None, _route(proxy.url()))
    finally:
        await guarded.close()
    assert (outcome.verdict, outcome.kind) == (Verdict.FAIL, ErrorKind.BLOCKED)
    assert proxy.connections == 0


async def test_an_oauth2_token_is_fetched_through_the_hooks_proxy(
        proxy: FakeProxy, sender: HttpSender) -> None:
    body = b'{"access_token": "tok-1", "expires_in": 60}'
    proxy.answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    status, answer = await sender.post_form("http://auth.test/oauth/token",
                                            {"grant_type": "client_credentials"},
                                            ("hookd", "client-secret"), 5.0,
                                            _route(proxy.url("ann:secret")))
    assert (status, answer) == (200, {"access_token": "tok-1", "expires_in": 60})
    assert proxy.heads[0].startswith(b"POST http://auth.test/oauth/token HTTP/1.1\r\n")
    assert b"Proxy-Authorization: Basic YW5uOnNlY3JldA==\r\n" in proxy.heads[0]


async def test_new_proxy_credentials_after_a_reload_close_the_old_connections(
        proxy: FakeProxy, sender: HttpSender) -> None:
    proxy.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    for credentials in ("ann:old", "ann:new"):  # the same proxy, another route: a reload
        outcome = await sender.attempt(_request("http://crm.test/calls"), None, 5.0, None,
                                       None, _route(proxy.url(credentials)))
        assert outcome.ok
    assert [b"YW5uOm5ldw==" in head for head in proxy.heads] == [False, True]  # ann:new
    assert proxy.connections == 2  # the one opened with the old credentials was not reused
