"""Egress through a real proxy, Debian's tinyproxy on 127.0.0.1 (tests/integration/
tinyproxy.py): deliveries from Kafka through it, plain (absolute-form requests) and
https (CONNECT, TLS to the endpoint inside the tunnel), each seen in the proxy's own log;
its refusals (407, 403) as outcomes; the SSRF guard's meaning with a proxy, gap included;
`hookd check --connect` saying which way each endpoint is reached.

The lines the proxy logged are printed (`pytest -s` shows them)."""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from hookd.config import DeliveryConfig
from hookd.config.proxies import ProxyUrl
from hookd.delivery.retries import ErrorKind, Verdict
from hookd.delivery.sender import HttpSender
from hookd.requests.proxy import NoProxy, Route, route_of
from hookd.requests.render import Request
from hookd.requests.target import tls_context
from tests.integration.harness import hook, new_topic, produce, running, wait_ready, write_config
from tests.integration.receiver import Receiver, serve
from tests.integration.tinyproxy import Tinyproxy, tinyproxy

LOOPBACK = ["127.0.0.0/8"]


class TlsReceiver:
    """An https receiver on 127.0.0.1 (certificate for localhost and 127.0.0.1, from a
    trustme CA whose PEM is `ca_file`), recording the headers of each request."""

    def __init__(self, folder: Path) -> None:
        self.ca = trustme.CA()
        self.ca_file = folder / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.seen: list[dict[str, str]] = []
        self.port = 0
        self.runner: web.AppRunner | None = None

    async def start(self) -> TlsReceiver:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)

        async def handle(request: web.Request) -> web.Response:
            self.seen.append({k.lower(): v for k, v in request.headers.items()})
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self.runner, self.port = await serve(app, ctx)
        return self

    def client_tls(self) -> ssl.SSLContext:
        return tls_context(ca_file=str(self.ca_file))


@pytest.fixture
async def tls_receiver(tmp_path: Path) -> AsyncIterator[TlsReceiver]:
    made = await TlsReceiver(tmp_path).start()
    yield made
    assert made.runner is not None
    await made.runner.cleanup()


@pytest.fixture
def proxy(tmp_path: Path) -> Any:
    with tinyproxy(tmp_path / "tinyproxy", "BasicAuth ann s3cret-pw") as running_proxy:
        yield running_proxy


def _show(proxy: Tinyproxy, what: str) -> list[str]:
    lines = proxy.requests()
    print(f"\ntinyproxy's log, {what}:\n" + "\n".join(lines))
    return lines


def _route(url: str) -> Route:
    route = route_of(ProxyUrl(url), None, NoProxy([]))
    assert route is not None
    return route


def _request(url: str) -> Request:
    return Request("crm", "POST", url, (("content-type", "application/json"),), b"{}", "msg_1")


async def test_deliveries_from_kafka_through_tinyproxy_plain_and_connect(
        broker: Any, receiver: Receiver, tls_receiver: TlsReceiver, proxy: Tinyproxy,
        tmp_path: Path) -> None:
    topic = await new_topic(broker.bootstrap, 1, "proxy")
    cfg = write_config(tmp_path, broker.bootstrap, topic, [
        hook("plain", "Answered", receiver.url("/plain")),
        hook("tls", "Answered", f"https://localhost:{tls_receiver.port}/tls",
             tls={"ca_file": str(tls_receiver.ca_file)}),
        hook("direct", "Answered", receiver.url("/direct"), proxy="none"),
    ], delivery={"allow_networks": LOOPBACK, "timeout": "5s",
                 "proxy": proxy.url("ann:s3cret-pw")})
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": "c-1"})])
        await receiver.wait_for(1, "/plain")
        await receiver.wait_for(1, "/direct")
        async with asyncio.timeout(20):
            while not tls_receiver.seen:
                await asyncio.sleep(0.05)
    lines = _show(proxy, "one event, three hooks (plain, tls through it; direct not)")
    assert any(f"POST http://127.0.0.1:{receiver.port}/plain HTTP/1.1" in line
               for line in lines)
    assert any(f"CONNECT localhost:{tls_receiver.port} HTTP/1.1" in line for line in lines)
    assert not any("/direct" in line for line in lines)
    plain, direct = receiver.at("/plain")[0].headers, receiver.at("/direct")[0].headers
    assert "tinyproxy" in plain.get("via", "") and "via" not in direct
    # the proxy's credentials stay with the proxy (tinyproxy drops the header it checked;
    # inside the tunnel hookd never sends it)
    assert "proxy-authorization" not in plain
    assert "proxy-authorization" not in tls_receiver.seen[0]


async def test_tinyproxy_refusals_come_to_clear_outcomes(
        tmp_path: Path, receiver: Receiver, tls_receiver: TlsReceiver) -> None:
    sender = HttpSender(DeliveryConfig(allow_networks=LOOPBACK))
    https = f"https://localhost:{tls_receiver.port}/x"
    tls = tls_receiver.client_tls()
    try:
        with tinyproxy(tmp_path / "p", "BasicAuth ann s3cret-pw", "ConnectPort 443") as proxy:
            none, wrong = _route(proxy.url()), _route(proxy.url("ann:wrong"))
            plain = await sender.attempt(_request(receiver.url("/x")), None, 5.0, None, None,
                                         none)
            tunnel = await sender.attempt(_request(https), None, 5.0, tls, None, none)
            refused = await sender.attempt(_request(https), None, 5.0, tls, None, wrong)
            ports = await sender.attempt(_request(https), None, 5.0, tls, None,
                                         _route(proxy.url("ann:s3cret-pw")))
            _show(proxy, "no credentials, wrong ones, then a CONNECT port it does not allow")
    finally:
        await sender.close()
    assert (plain.verdict, plain.status) == (Verdict.FAIL, 407)
    assert plain.message.startswith("HTTP 407 from the proxy: the proxy wants other credentials")
    for outcome in (tunnel, refused, ports):  # never retried: nothing changes until the config
        assert (outcome.verdict, outcome.kind, outcome.status) == (
            Verdict.FAIL, ErrorKind.CONNECT, None)
    assert tunnel.message.startswith(
        f"proxy http://127.0.0.1:{proxy.port} answered CONNECT localhost:"
        f"{tls_receiver.port} with 407 Proxy Authentication Required")
    assert refused.message.startswith(  # tinyproxy's answer to wrong credentials
        f"proxy http://***@127.0.0.1:{proxy.port} answered CONNECT localhost:"
        f"{tls_receiver.port} with 401 Unauthorized: the proxy refused the credentials")
    assert "with 403 Access violation: the proxy's rules do not allow" in ports.message
    assert not receiver.requests and not tls_receiver.seen


async def test_the_ssrf_guard_checks_the_destination_and_the_proxy_resolves_it_again(
        tmp_path: Path, receiver: Receiver) -> None:
    """hookd resolves and checks the destination before handing its name to the proxy;
    the proxy's own address is operator config, not checked (here: loopback, with
    allow_networks empty). The proxy resolves the name again: where its answer differs
    from hookd's (DNS rebinding, split horizon), hookd's check does not hold; the proxy's
    own rules must (docs/security.md)."""
    async def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]  # what hookd's resolver says; data, never connected to

    guarded = HttpSender(DeliveryConfig(allow_networks=[]))
    fooled = HttpSender(DeliveryConfig(allow_networks=[]), lookup=public)
    try:
        with tinyproxy(tmp_path / "p") as proxy:
            route = _route(proxy.url())
            blocked = await guarded.attempt(_request(receiver.url("/x")), None, 5.0, None,
                                            None, route)
            named = await guarded.attempt(
                _request(f"http://localhost:{receiver.port}/y"), None, 5.0, None, None, route)
            assert proxy.requests() == []  # refused before the proxy was asked
            gap = await fooled.attempt(_request(f"http://localhost:{receiver.port}/gap"),
                                       None, 5.0, None, None, route)
            _show(proxy, "the guard's gap: hookd was told a public address, tinyproxy "
                         "resolved localhost itself")
    finally:
        await guarded.close()
        await fooled.close()
    assert (blocked.verdict, blocked.kind) == (Verdict.FAIL, ErrorKind.BLOCKED)
    assert "127.0.0.1" in blocked.message
    assert (named.verdict, named.kind) == (Verdict.FAIL, ErrorKind.BLOCKED)
    assert gap.ok and [r.path for r in receiver.requests] == ["/gap"]


async def test_check_connect_says_direct_or_through_the_proxy(
        broker: Any, tls_receiver: TlsReceiver, receiver: Receiver, proxy: Tinyproxy,
        tmp_path: Path) -> None:
    topic = await new_topic(broker.bootstrap, 1, "proxy")
    cfg = write_config(tmp_path, broker.bootstrap, topic, [
        hook("crm-tls", "Answered", f"https://localhost:{tls_receiver.port}/tls",
             tls={"ca_file": str(tls_receiver.ca_file)}),
        hook("crm-plain", "Answered", receiver.url("/plain")),
        hook("local", "Answered", f"https://127.0.0.1:{tls_receiver.port}/direct",
             proxy="none"),
    ], delivery={"allow_networks": LOOPBACK, "proxy": proxy.url("ann:s3cret-pw")})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hookd", "check", "--connect", "-c", str(cfg),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    lines = [line for line in out.decode().splitlines() if "endpoint" in line]
    print("\nhookd check --connect, its endpoint lines:\n" + "\n".join(lines))
    assert process.returncode == 0, out.decode() + err.decode()
    assert lines == [
        f"ok    endpoint http://127.0.0.1:{receiver.port} (hook(s) crm-plain): resolves to "
        f"127.0.0.1, allowed; through proxy http://***@127.0.0.1:{proxy.port}: the proxy "
        "accepts connections",
        f"ok    endpoint https://127.0.0.1:{tls_receiver.port} (hook(s) local): resolves to "
        "127.0.0.1, allowed; direct",
        f"ok    endpoint https://localhost:{tls_receiver.port} (hook(s) crm-tls): resolves to "
        f"{lines[2].split('resolves to ')[1].split(', allowed')[0]}, allowed; through proxy "
        f"http://***@127.0.0.1:{proxy.port}: CONNECT localhost:{tls_receiver.port} answered "
        "200 Connection established",
    ]
    assert "s3cret" not in out.decode()
    assert any(f"CONNECT localhost:{tls_receiver.port}" in line for line in proxy.requests())
