"""A compiled hook's requests on the wire through HttpSender: framed from the hook's head
(hookd.requests.head), byte for byte what encode_request makes of the signed headers,
signed afresh per attempt; extra headers it does not frame go by encode_request, errors
and all."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import hookd.delivery.client
from hookd.config import DeliveryConfig
from hookd.delivery.retries import ErrorKind, Verdict
from hookd.delivery.sender import HttpSender
from hookd.delivery.wire import encode_request
from hookd.events.decode import Event, Meta
from hookd.events.trace import TraceContext
from hookd.requests.render import CompiledHook, Request
from hookd.requests.target import target_of
from tests.unit.delivery.test_client import loopback, ok, serve
from tests.unit.requests.test_render import compile_one

__all__ = ["serve"]  # (the raw server's fixture, used here)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TRACE = TraceContext("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "rojo=1")
LOOPBACK = ["127.0.0.0/8"]


@pytest.fixture
async def sender() -> AsyncIterator[HttpSender]:
    made = HttpSender(DeliveryConfig(allow_networks=LOOPBACK), lookup=loopback)
    yield made
    await made.close()


def hook_to(url: str, **request: Any) -> CompiledHook:
    return compile_one({"url": url, "headers": {"X-Id": "{{ id }}"}, **request},
                       auth={"type": "bearer", "token": "t0k"}, signing={"secret": SECRET})


def rendered(hook: CompiledHook) -> Request:
    request = hook.render(Event("Answered", "evt-1", {"id": "evt-1", "queue": "Q"},
                                Meta("cc.events", 0, 1), TRACE))
    assert request.head is not None
    return request


def expected(hook: CompiledHook, request: Request, sent: bytes,
             extra: dict[str, str] | None = None) -> bytes:
    """encode_request's bytes for the request, at the timestamp `sent` carries."""
    found = re.search(rb"\r\nwebhook-timestamp: (\d+)\r\n", sent)
    assert found is not None
    headers = request.signed_headers(hook.signer, int(found[1]))
    headers.update(extra or {})
    return encode_request(request.method, target_of(request.url), headers, request.body)


@pytest.fixture
def no_encode_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """The framed way only: encode_request is not called."""
    def refuse(*args: Any) -> bytes:
        raise AssertionError("encode_request called")
    monkeypatch.setattr(hookd.delivery.client, "encode_request", refuse)


@pytest.mark.parametrize("path", ["/hook", "/{{ queue|lower }}", "/hook?a=1"])
async def test_framed_bytes_are_encode_requests(serve: Callable[..., Any], sender: HttpSender,
                                                path: str, no_encode_request: None) -> None:
    server = await serve(lambda _req: ok())
    hook = hook_to(f"http://127.0.0.1:{server.port}{path}")
    request = rendered(hook)
    for _ in range(2):  # a retry: the same request, signed again
        outcome = await sender.attempt(request, hook.signer, 5.0)
        assert outcome.verdict is Verdict.DELIVERED
    assert len(server.requests) == 2
    for sent in server.requests:
        assert sent == expected(hook, request, sent)
    assert b"traceparent: " in sent and b"webhook-signature: v1," in sent


async def test_oauth2_extra_headers(serve: Callable[..., Any], sender: HttpSender,
                                    no_encode_request: None) -> None:
    server = await serve(lambda _req: ok())
    hook = compile_one({"url": server.url}, auth={
        "type": "oauth2", "token_url": "https://auth.example/token", "client_id": "c",
        "client_secret": "s"})
    request = rendered(hook)
    extra = {"Authorization": "Bearer from-the-token-endpoint"}
    outcome = await sender.attempt(request, hook.signer, 5.0, None, extra)
    assert outcome.verdict is Verdict.DELIVERED
    assert server.requests[0] == expected(hook, request, server.requests[0], extra)


async def test_extra_headers_it_does_not_frame(serve: Callable[..., Any],
                                               sender: HttpSender) -> None:
    server = await serve(lambda _req: ok())
    hook = hook_to(server.url)
    request = rendered(hook)
    extra = {"authorization": "Bearer replaced"}  # the hook's own, replaced where it stands
    assert (await sender.attempt(request, hook.signer, 5.0, None, extra)).verdict \
        is Verdict.DELIVERED
    assert server.requests[0] == expected(hook, request, server.requests[0], extra)
    assert b"authorization: Bearer replaced\r\n" in server.requests[0]
    outcome = await sender.attempt(request, hook.signer, 5.0, None,
                                   {"Authorization": "x\r\nX-Injected: 1"})
    assert outcome.kind is ErrorKind.RENDER
    assert outcome.message == "invalid request: a header name or value contains CR, LF or NUL"
    assert len(server.requests) == 1  # nothing sent
