"""hookd.delivery.sender.HttpSender against real aiohttp servers on 127.0.0.1, and
hookd.delivery.ssrf.

Traffic goes to 127.0.0.1/localhost only; other addresses appear as data, never connected to.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hookd import USER_AGENT
from hookd.config import DeliveryConfig
from hookd.delivery import sending as sending_mod
from hookd.delivery.retries import ErrorKind, Verdict, failure
from hookd.delivery.sender import HttpSender
from hookd.delivery.ssrf import AddressPolicy, GuardedResolver, literal_ip
from hookd.errors import BlockedDestination
from hookd.requests.render import Request
from hookd.requests.signing import Signer
from hookd.requests.target import target_of

LOOPBACK = ["127.0.0.0/8"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """A real aiohttp server on 127.0.0.1 with a few behaviours, recording every request."""

    hits: list[Hit] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)  # frees /hold
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # ends every wait at teardown
    port: int = 0
    runner: web.AppRunner | None = None
    big_size: int = 8192

    def url(self, path: str = "/ok", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def at(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def _wait(self, event: asyncio.Event, seconds: float) -> None:
        waits = [asyncio.ensure_future(e.wait()) for e in (event, self.stop)]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(Hit(request.path, {k.lower(): v for k, v in request.headers.items()},
                             await request.read()))
        path = request.path
        if path == "/ok":
            return web.Response(text="ok")
        if path == "/created":
            return web.Response(status=201)
        if path == "/busy":
            return web.Response(status=503, text="busy", headers={"Retry-After": "30"})
        if path == "/redirect":
            return web.Response(status=302, headers={"Location": "/target"})
        if path == "/missing":
            return web.Response(status=404, text="no such thing")
        if path == "/gone":
            return web.Response(status=410, text="gone")
        if path == "/slow":
            await self._wait(asyncio.Event(), 5.0)
            return web.Response(text="late")
        if path in ("/big", "/big-error"):
            resp = web.StreamResponse(status=200 if path == "/big" else 500)
            await resp.prepare(request)
            await resp.write(b"x" * self.big_size)
            await self._wait(asyncio.Event(), 30.0)  # the rest never comes in time
            return resp
        if path in ("/hold", "/pace"):
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            try:
                if path == "/hold":
                    await self._wait(self.release, 10.0)
                else:
                    await asyncio.sleep(0.1)
            finally:
                self.active -= 1
            return web.Response(text="done")
        return web.Response(status=200, text="ok")


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[], Awaitable[Server]]]:
    servers: list[Server] = []

    async def start() -> Server:
        server = Server()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", server.handle)
        server.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await server.runner.setup()
        site = web.TCPSite(server.runner, "127.0.0.1", 0)
        await site.start()
        server.port = int(server.runner.addresses[0][1])
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop.set()
        server.release.set()
        assert server.runner is not None
        await server.runner.cleanup()


@pytest.fixture
async def server(serve: Callable[[], Awaitable[Server]]) -> Server:
    return await serve()


SenderFactory = Callable[..., Awaitable[HttpSender]]


@pytest.fixture
async def make_sender() -> AsyncIterator[SenderFactory]:
    senders: list[HttpSender] = []

    async def make(**settings: Any) -> HttpSender:
        settings.setdefault("allow_networks", LOOPBACK)
        sender = HttpSender(DeliveryConfig(**settings))
        await sender.start()
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        await sender.close()


@pytest.fixture
async def sender(make_sender: SenderFactory) -> HttpSender:
    return await make_sender()


def request(url: str, body: bytes = b'{"call": "c-1", "agent": "Ann"}', method: str = "POST",
            msg_id: str = "msg_0123456789abcdef") -> Request:
    headers = (("content-type", "application/json"), ("user-agent", USER_AGENT),
               ("webhook-id", msg_id), ("x-source", "hookd"))
    return Request("crm", method, url, headers, body, msg_id)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------- outcomes

@pytest.mark.parametrize(("path", "verdict", "status"), [
    ("/ok", Verdict.DELIVERED, 200),
    ("/created", Verdict.DELIVERED, 201),
    ("/missing", Verdict.FAIL, 404),
    ("/gone", Verdict.GONE, 410),
])
async def test_status_outcomes(server: Server, sender: HttpSender, path: str, verdict: Verdict,
                               status: int) -> None:
    outcome = await sender.attempt(request(server.url(path)), None, 5.0)
    assert outcome.verdict is verdict
    assert outcome.status == status
    assert len(server.at(path)) == 1
    if verdict is not Verdict.DELIVERED:
        assert outcome.kind is ErrorKind.HTTP_STATUS
        assert outcome.message.startswith(f"HTTP {status}")


async def test_error_body_is_in_the_message(server: Server, sender: HttpSender) -> None:
    outcome = await sender.attempt(request(server.url("/missing")), None, 5.0)
    assert outcome.message == "HTTP 404: no such thing"


async def test_503_with_retry_after_is_retried(server: Server, sender: HttpSender) -> None:
    outcome = await sender.attempt(request(server.url("/busy")), None, 5.0)
    assert outcome.verdict is Verdict.RETRY
    assert outcome.kind is ErrorKind.HTTP_STATUS
    assert outcome.status == 503
    assert outcome.retry_after == 30.0


async def test_redirect_is_not_followed(server: Server, sender: HttpSender) -> None:
    outcome = await sender.attempt(request(server.url("/redirect")), None, 5.0)
    assert outcome.verdict is Verdict.FAIL
    assert (outcome.kind, outcome.status) == (ErrorKind.HTTP_STATUS, 302)
    assert len(server.at("/redirect")) == 1
    assert server.at("/target") == []  # the redirect target never saw a request


async def test_timeout(server: Server, sender: HttpSender) -> None:
    # the hook's 0.3 s timeout ends the attempt; wait_for only guards against a hang
    outcome = await asyncio.wait_for(sender.attempt(request(server.url("/slow")), None, 0.3),
                                     30.0)
    assert outcome.verdict is Verdict.RETRY
    assert outcome.kind is ErrorKind.TIMEOUT
    assert outcome.status is None
    assert sender.endpoints.in_flight == 0


async def test_connection_refused(sender: HttpSender) -> None:
    outcome = await sender.attempt(request(f"http://127.0.0.1:{closed_port()}/"), None, 5.0)
    assert outcome.verdict is Verdict.RETRY
    assert outcome.kind is ErrorKind.CONNECT
    assert outcome.status is None
    assert sender.endpoints.in_flight == 0


@pytest.mark.parametrize("limit", [0, 1024])
@pytest.mark.parametrize(("path", "verdict"), [("/big", Verdict.DELIVERED),
                                               ("/big-error", Verdict.RETRY)])
async def test_response_body_over_the_limit_is_cut(
        server: Server, make_sender: SenderFactory, limit: int, path: str,
        verdict: Verdict) -> None:
    """The server sends more than max_response_bytes and then stalls: reading stops at the
    limit, so the outcome comes at once instead of a timeout; the sender keeps working."""
    sender = await make_sender(max_response_bytes=limit)
    outcome = await asyncio.wait_for(sender.attempt(request(server.url(path)), None, 3.0),
                                     30.0)
    assert outcome.verdict is verdict
    assert outcome.kind is not ErrorKind.TIMEOUT
    if verdict is Verdict.RETRY:
        assert outcome.message == "HTTP 500: " + "x" * min(limit, 200)
    for _ in range(2):  # the next requests are fine (the cut connection was not reused)
        again = await sender.attempt(request(server.url("/ok")), None, 3.0)
        assert again.verdict is Verdict.DELIVERED
    assert sender.endpoints.in_flight == 0


# ------------------------------------------------------------------------- headers, signing

SECRET_KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()
SECRET2 = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()


async def test_headers_without_signer(server: Server, sender: HttpSender) -> None:
    outcome = await sender.attempt(request(server.url("/ok")), None, 5.0)
    assert outcome.ok
    (hit,) = server.hits
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["user-agent"] == USER_AGENT
    assert hit.headers["webhook-id"] == "msg_0123456789abcdef"
    assert hit.headers["x-source"] == "hookd"
    assert abs(int(hit.headers["webhook-timestamp"]) - time.time()) < 5
    assert "webhook-signature" not in hit.headers
    assert hit.body == b'{"call": "c-1", "agent": "Ann"}'


@pytest.mark.parametrize("secrets", [[SECRET], [SECRET, SECRET2]], ids=["one", "rotation"])
async def test_signature_verifies_with_standardwebhooks(server: Server, sender: HttpSender,
                                                        secrets: list[str]) -> None:
    outcome = await sender.attempt(request(server.url("/ok")), Signer.from_secrets(secrets), 5.0)
    assert outcome.ok
    (hit,) = server.hits
    sigs = hit.headers["webhook-signature"].split(" ")
    assert len(sigs) == len(secrets) and all(s.startswith("v1,") for s in sigs)
    for secret in secrets:
        assert Webhook(secret).verify(hit.body, hit.headers) == {"call": "c-1", "agent": "Ann"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secrets[0]).verify(hit.body + b" ", hit.headers)
    other = "whsec_" + base64.b64encode(b"k" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(hit.body, hit.headers)


async def test_timestamp_is_fresh_on_each_attempt(server: Server, sender: HttpSender,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    now = int(time.time())
    clock = iter([now, now + 7])
    monkeypatch.setattr(sending_mod, "time",
                        types.SimpleNamespace(time=lambda: next(clock), monotonic=time.monotonic))
    signer = Signer.from_secrets([SECRET])
    req = request(server.url("/ok"))
    for _ in range(2):
        assert (await sender.attempt(req, signer, 5.0)).ok
    first, second = server.hits
    assert first.headers["webhook-timestamp"] == str(now)
    assert second.headers["webhook-timestamp"] == str(now + 7)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    for hit in (first, second):
        Webhook(SECRET).verify(hit.body, hit.headers)


async def test_methods_and_empty_body(server: Server, sender: HttpSender) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        body = b"" if method == "GET" else b"{}"
        assert (await sender.attempt(request(server.url("/ok"), body, method), None, 5.0)).ok
    assert [h.body for h in server.hits] == [b"", b"{}", b"{}", b"{}"]


@pytest.mark.parametrize("header", [("x-bad", "a\r\nInjected: 1"), ("x-bad", "a\nb"),
                                    ("x-bad\r\nInjected", "1")],
                         ids=["crlf-in-value", "lf-in-value", "crlf-in-name"])
async def test_a_header_with_cr_lf_fails_and_does_not_raise(server: Server, sender: HttpSender,
                                                            header: tuple[str, str]) -> None:
    """`attempt` must not raise (a raising delivery would never finish its record)."""
    req = Request("crm", "POST", server.url("/ok"),
                  (("content-type", "application/json"), header), b"{}", "msg_x")
    outcome = await sender.attempt(req, None, 5.0)
    assert outcome.verdict is Verdict.FAIL
    assert outcome.kind is ErrorKind.RENDER
    assert server.hits == []
    assert sender.endpoints.in_flight == 0


async def test_extra_headers_with_cr_lf_fail_and_do_not_raise(server: Server,
                                                              sender: HttpSender) -> None:
    """E.g. an OAuth2 token endpoint answering a token with a line break in it."""
    outcome = await sender.attempt(request(server.url("/ok")), None, 5.0, None,
                                   {"authorization": "Bearer abc\r\nInjected: 1"})
    assert (outcome.verdict, outcome.kind) == (Verdict.FAIL, ErrorKind.RENDER)
    assert server.hits == []
    ok = await sender.attempt(request(server.url("/ok")), None, 5.0, None,
                              {"authorization": "Bearer abc"})
    assert ok.ok
    assert server.hits[0].headers["authorization"] == "Bearer abc"


# ------------------------------------------------------------------------- limits

async def test_per_endpoint_cap_is_enforced(server: Server, make_sender: SenderFactory) -> None:
    sender = await make_sender(per_endpoint_in_flight=2, max_in_flight=50)
    outcomes = await asyncio.gather(*(sender.attempt(request(server.url("/pace")), None, 5.0)
                                      for _ in range(6)))
    assert all(o.ok for o in outcomes)
    assert len(server.at("/pace")) == 6
    assert server.max_active == 2
    assert sender.endpoints.in_flight == 0


async def test_a_slow_endpoint_does_not_take_the_global_slots(
        serve: Callable[[], Awaitable[Server]], make_sender: SenderFactory) -> None:
    slow, fast = await serve(), await serve()
    sender = await make_sender(per_endpoint_in_flight=2, max_in_flight=3)
    stuck = [asyncio.create_task(sender.attempt(request(slow.url("/hold")), None, 10.0))
             for _ in range(6)]
    for _ in range(200):
        if slow.active == 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert slow.active == 2  # its own cap
    assert sender.endpoints.in_flight == 2
    outcome = await asyncio.wait_for(sender.attempt(request(fast.url("/ok")), None, 5.0), 2.0)
    assert outcome.ok
    assert slow.active == 2 and not any(t.done() for t in stuck)
    slow.release.set()
    assert all(o.ok for o in await asyncio.gather(*stuck))
    assert slow.max_active == 2
    assert sender.endpoints.in_flight == 0


# ------------------------------------------------------------------------- SSRF, for real

@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_loopback_blocked_without_allow_networks(
        server: Server, make_sender: SenderFactory, host: str) -> None:
    sender = await make_sender(allow_networks=[])
    outcome = await sender.attempt(request(server.url("/ok", host)), None, 5.0)
    assert outcome.verdict is Verdict.FAIL
    assert outcome.kind is ErrorKind.BLOCKED
    assert "not allowed" in outcome.message
    assert server.hits == []  # nothing reached the server
    assert sender.endpoints.in_flight == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_loopback_allowed_by_allow_networks(server: Server, make_sender: SenderFactory,
                                                  host: str) -> None:
    sender = await make_sender(allow_networks=LOOPBACK)
    outcome = await sender.attempt(request(server.url("/ok", host)), None, 5.0)
    assert outcome.ok
    assert len(server.hits) == 1


@pytest.mark.parametrize("allow", [[], LOOPBACK])
async def test_a_non_canonical_ipv4_host_never_reaches_anything(
        server: Server, make_sender: SenderFactory, allow: list[str]) -> None:
    """`127.1` means 127.0.0.1 to inet_aton; aiohttp refuses such a host outright."""
    sender = await make_sender(allow_networks=allow)
    outcome = await sender.attempt(request(server.url("/ok", "127.1")), None, 5.0)
    assert outcome.verdict is Verdict.FAIL  # it can never work: not retried
    assert outcome.kind is ErrorKind.RENDER
    assert server.hits == []


async def test_blocked_on_every_attempt(server: Server, make_sender: SenderFactory) -> None:
    """A cached resolution or a kept-alive connection does not lift the guard."""
    sender = await make_sender(allow_networks=[])
    for _ in range(3):
        outcome = await sender.attempt(request(server.url("/ok", "localhost")), None, 5.0)
        assert outcome.kind is ErrorKind.BLOCKED
    assert server.hits == []


async def test_ipv6_loopback_literal_is_blocked_even_with_v4_loopback_allowed(
        make_sender: SenderFactory) -> None:
    sender = await make_sender(allow_networks=LOOPBACK)
    outcome = await sender.attempt(request(f"http://[::1]:{closed_port()}/"), None, 5.0)
    assert outcome.kind is ErrorKind.BLOCKED


# ------------------------------------------------------------------------- AddressPolicy

POLICY_TABLE: list[tuple[str, list[str], bool]] = [
    ("127.0.0.1", [], False),
    ("127.255.255.254", [], False),
    ("::1", [], False),
    ("10.0.0.1", [], False),
    ("10.255.255.255", [], False),
    ("172.16.0.1", [], False),
    ("172.31.255.254", [], False),
    ("192.168.0.1", [], False),
    ("169.254.169.254", [], False),  # cloud metadata
    ("100.100.100.200", [], False),  # shared address space 100.64/10 (a cloud metadata too)
    ("100.64.0.1", [], False),
    ("fe80::1", [], False),
    ("fe80::1%eth0", [], False),
    ("fc00::1", [], False),
    ("fd12:3456::1", [], False),
    ("224.0.0.1", [], False),
    ("239.255.255.250", [], False),
    ("ff02::1", [], False),
    ("0.0.0.0", [], False),
    ("0.1.2.3", [], False),
    ("::", [], False),
    ("255.255.255.255", [], False),
    ("240.0.0.1", [], False),  # reserved
    ("::ffff:127.0.0.1", [], False),  # IPv4-mapped IPv6 loopback
    ("::ffff:10.0.0.1", [], False),
    ("::ffff:169.254.169.254", [], False),
    ("not-an-address", [], False),
    ("", [], False),
    ("93.184.216.34", [], True),  # public
    ("172.32.0.1", [], True),  # just outside 172.16/12
    ("2606:2800:220:1:248:1893:25c8:1946", [], True),
    ("::ffff:93.184.216.34", [], True),
    ("127.0.0.1", ["127.0.0.0/8"], True),
    ("127.0.0.5", ["127.0.0.1/32"], False),
    ("::ffff:127.0.0.1", ["127.0.0.0/8"], True),
    ("::1", ["127.0.0.0/8"], False),
    ("::1", ["::1/128"], True),
    ("10.1.2.3", ["10.0.0.0/8"], True),
    ("10.1.2.3", ["10.1.2.0/24", "192.168.0.0/16"], True),
    ("192.168.7.7", ["10.1.2.0/24", "192.168.0.0/16"], True),
    ("172.16.0.1", ["10.0.0.0/8"], False),
    ("fe80::1%eth0", ["fe80::/10"], True),
    ("10.1.2.3", ["10.1.2.3"], True),  # a single address, no prefix length
    ("93.184.216.34", ["10.0.0.0/8"], True),
]


POLICY_IDS = [f"{a or 'empty'}-{'+'.join(n) or 'none'}" for a, n, _ in POLICY_TABLE]


@pytest.mark.parametrize(("address", "allow", "permitted"), POLICY_TABLE, ids=POLICY_IDS)
def test_address_policy(address: str, allow: list[str], permitted: bool) -> None:
    policy = AddressPolicy(allow)
    assert policy.permits(address) is permitted
    if permitted:
        policy.check("host.example", address)
    else:
        with pytest.raises(BlockedDestination, match="not allowed"):
            policy.check("host.example", address)


@pytest.mark.parametrize(("host", "ip"), [
    ("127.0.0.1", "127.0.0.1"), ("[::1]", "::1"), ("::1", "::1"),
    ("crm.example.com", None), ("localhost", None), ("", None),
])
def test_literal_ip(host: str, ip: str | None) -> None:
    assert literal_ip(host) == ip


def table_lookup(answers: dict[str, list[str]]) -> Callable[[str, int], Awaitable[list[str]]]:
    """Answers from a table; no DNS traffic at all. Counts the lookups."""
    calls: list[str] = []

    async def lookup(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[host]

    lookup.calls = calls  # type: ignore[attr-defined]
    return lookup


async def test_guarded_resolver_filters_and_refuses() -> None:
    lookup = table_lookup({"mixed.example": ["10.0.0.1", "93.184.216.34", "::1"],
                           "internal.example": ["10.0.0.1", "192.168.1.1"],
                           "rebind.example": ["169.254.169.254"]})
    resolver = GuardedResolver(AddressPolicy(), lookup)
    assert await resolver.resolve("mixed.example", 443) == ["93.184.216.34"]
    for host in ("internal.example", "rebind.example"):
        with pytest.raises(BlockedDestination, match=host):
            await resolver.resolve(host, 443)
    allowing = GuardedResolver(AddressPolicy(["10.0.0.0/8"]), lookup)
    assert await allowing.resolve("internal.example", 80) == ["10.0.0.1"]
    with pytest.raises(BlockedDestination, match=r"127\.0\.0\.1"):
        await resolver.resolve("127.0.0.1", 80)  # a literal is checked, never looked up
    assert "127.0.0.1" not in lookup.calls  # type: ignore[attr-defined]


async def test_guarded_resolver_caches_answers_until_forget() -> None:
    lookup = table_lookup({"crm.example": ["93.184.216.34"]})
    resolver = GuardedResolver(AddressPolicy(), lookup, ttl=60.0)
    for _ in range(3):
        assert await resolver.resolve("crm.example", 443) == ["93.184.216.34"]
    assert lookup.calls == ["crm.example"]  # type: ignore[attr-defined]
    resolver.forget()
    await resolver.resolve("crm.example", 443)
    assert lookup.calls == ["crm.example"] * 2  # type: ignore[attr-defined]



async def test_a_stalled_endpoint_parks_new_requests_instead_of_queueing_them(
        make_sender: SenderFactory) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def swallow(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.append(w)  # accept, answer nothing

    hole = await asyncio.start_server(swallow, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{hole.sockets[0].getsockname()[1]}/void"
    sender = await make_sender(per_endpoint_in_flight=2)
    sender.endpoints.stall_after = 0.3
    queued = [asyncio.create_task(sender.attempt(request(url), None, 30.0)) for _ in range(4)]
    try:
        await asyncio.sleep(0.1)
        assert not sender.endpoints.get(target_of(url).endpoint).stalled()  # full, not for long
        assert not any(t.done() for t in queued)
        # the two waiting behind the cap give up once the endpoint has been silent a while
        await asyncio.wait(queued, timeout=2.0, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.sleep(0.1)
        parked = [t.result() for t in queued if t.done()]
        assert len(parked) == 2 and len(accepted) == 2  # only the cap reached the hole
        assert all(o.verdict is Verdict.PARK and o.kind is ErrorKind.TIMEOUT for o in parked)
        # still silent: a newcomer is parked at once, without waiting its turn
        newcomer = asyncio.create_task(sender.attempt(request(url), None, 30.0))
        for _ in range(3):  # a few turns of the loop, no waiting for any timer
            await asyncio.sleep(0)
        assert newcomer.done()
        outcome = newcomer.result()
        assert outcome.verdict is Verdict.PARK
    finally:
        for task in queued:
            task.cancel()
        await asyncio.gather(*queued, return_exceptions=True)
        hole.close()
        for w in accepted:
            w.close()
    assert sender.endpoints.in_flight == 0


async def test_unavailable_reports_an_open_circuit_before_any_request(
        make_sender: SenderFactory) -> None:
    sender = await make_sender()
    endpoint = "https://crm.example:443"
    assert sender.unavailable(endpoint) is None
    crm = sender.endpoints.get(endpoint)
    for _ in range(sender.endpoints.policy.failures):
        crm.circuit.record(failure(ErrorKind.CONNECT, "refused"), time.monotonic())
    closed = sender.unavailable(endpoint)
    assert closed is not None and closed.verdict is Verdict.PARK
    assert closed.retry_after is not None and closed.retry_after > 0
    assert sender.unavailable("https://other.example:443") is None
