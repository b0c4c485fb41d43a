"""hookd.requests.head: a hook's head framed at load gives, attempt by attempt, the bytes
hookd.delivery.wire.encode_request gives for the same request, or gives way to it."""

from __future__ import annotations

from typing import Any

import pytest

from hookd.delivery.wire import encode_request
from hookd.events.decode import Event, Meta
from hookd.events.trace import TraceContext
from hookd.requests.head import Head, attempt_bytes, compile_head
from hookd.requests.render import CompiledHook, Request
from hookd.requests.target import Target, target_of
from tests.unit.requests.test_render import compile_one

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SECRET_A = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET_B = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
PAYLOAD = {"event": "Answered", "id": "evt-1", "queue": "Support", "agent": {"name": "Ann"}}

# (request, the rest of the hook): the shapes a hook's head can take
HOOKS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {}),
    ({"headers": {"X-Sent": "{{ id }}", "X-Fixed": "a"}},
     {"auth": {"type": "bearer", "token": "t0k"}, "signing": {"secret": SECRET_A}}),
    ({"url": "https://crm.example.com/{{ event|lower }}", "headers": {"X-Q": "{{ queue }}"}},
     {"auth": {"type": "api_key", "header": "X-Api-Key", "value": "k3y"}}),
    ({"url": "http://crm.example.com:8080/x?y=1", "body": '{"id": {{ id|tojson }}}'},
     {"signing": {"secret": [SECRET_A, SECRET_B]}}),
    ({"method": "GET", "fields": ["id", "queue"]}, {}),
    ({"method": "GET", "query": {"a": "{{ id }}"}},
     {"auth": {"type": "basic", "username": "u", "password": "p"}}),
    ({"method": "DELETE", "url": "https://[::1]:8443/calls"}, {}),
    ({"method": "PUT", "raw_body": '{"id": "${id}"}', "content_type": "text/plain"}, {}),
    ({"body": "", "content_type": "text/plain"}, {}),  # no body: Content-Length: 0
    ({"method": "DELETE", "raw_body": "", "content_type": "text/plain"}, {}),  # no length
    ({"headers": {"Traceparent": "{{ trace.traceparent }}"}}, {}),  # the hook's own trace
    ({}, {"trace_context": False}),
]
TRACES = [None, TraceContext(PARENT), TraceContext(PARENT, "rojo=00f067aa0ba902b7")]
EXTRAS: list[dict[str, str] | None] = [None, {}, {"Authorization": "Bearer from-oauth2"}]


def event(trace: TraceContext | None) -> Event:
    return Event("Answered", "evt-1", dict(PAYLOAD), Meta("cc.events", 0, 1), trace)


def wire(hook: CompiledHook, request: Request, target: Target, timestamp: int,
         extra: dict[str, str] | None) -> bytes:
    """What encode_request sends: the request's signed headers and the extra ones."""
    headers = request.signed_headers(hook.signer, timestamp)
    headers.update(extra or {})
    return encode_request(request.method, target, headers, request.body)


def framed(hook: CompiledHook, request: Request, target: Target, timestamp: int,
           extra: dict[str, str] | None) -> bytes | None:
    assert request.head is not None
    signature = (None if hook.signer is None else
                 hook.signer.signature(request.webhook_id, timestamp, request.body))
    return attempt_bytes(request.head, request.text, target, timestamp, signature, extra,
                         request.body)


@pytest.mark.parametrize(("req", "rest"), HOOKS)
@pytest.mark.parametrize("trace", TRACES)
@pytest.mark.parametrize("extra", EXTRAS)
def test_the_same_bytes_as_encode_request(req: dict[str, Any], rest: dict[str, Any],
                                          trace: TraceContext | None,
                                          extra: dict[str, str] | None) -> None:
    hook = compile_one(req, **rest)
    assert hook.head is not None
    request = hook.render(event(trace))
    target = target_of(request.url)
    if hook.head.target is not None:  # parsed at load: the same as per attempt
        assert hook.head.target == target and hook.head.start is not None
    for timestamp in (1_700_000_000, 1_700_000_007):  # (a retry: signed afresh)
        expected = wire(hook, request, target, timestamp, extra)
        assert framed(hook, request, target, timestamp, extra) == expected
        assert f"webhook-timestamp: {timestamp}\r\n".encode() in expected


def test_the_url_is_fixed_at_load_only_without_a_query_per_event() -> None:
    assert compile_one({}).head.target == target_of("https://crm.example.com/calls")  # type: ignore[union-attr]
    for req in ({"url": "https://crm.example.com/{{ id }}"}, {"query": {"a": "b"}},
                {"method": "GET"}, {"method": "GET", "fields": ["id"]}):
        head = compile_one(req).head
        assert head is not None and head.target is None and head.start is None


@pytest.mark.parametrize("extra", [
    {"authorization": "Bearer x"},  # replaces the hook's own (bearer) in place
    {"Host": "other.example"},  # encode_request then writes no Host line of its own
    {"webhook-id": "msg_other"},
    {"Authorization": "Bearer x\r\nX-Injected: 1"},  # the wire's ValueError: its to say
    {"Authorization": "nul\x00"},
])
def test_extra_headers_it_does_not_frame_go_by_encode_request(extra: dict[str, str]) -> None:
    hook = compile_one({}, auth={"type": "bearer", "token": "t0k"})
    request = hook.render(event(None))
    target = target_of(request.url)
    assert framed(hook, request, target, 1_700_000_000, extra) is None
    if any(c in v for v in extra.values() for c in "\r\n\x00"):
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            wire(hook, request, target, 1_700_000_000, extra)


def test_a_content_type_breaking_the_framing_leaves_it_to_the_wire() -> None:
    hook = compile_one({"content_type": "text/plain\r\nX-Injected: 1"})
    assert hook.head is None
    request = hook.render(event(None))
    assert request.head is None and request.text == ""
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        wire(hook, request, target_of(request.url), 1_700_000_000, None)


@pytest.mark.parametrize(("templated", "static", "trace"), [
    (("x-a",), (("x-k", "v\r\n"),), True),  # a static value breaking the framing
    (("x-a\n",), (), True),  # a name (config validation refuses it first)
    (("x-a",), (("x-a", "v"),), True),  # a name twice
    (("traceparent",), (), True),  # the event's trace header too
    ((), (("Host", "v"),), True),  # Host: encode_request writes none of its own then
])
def test_what_it_does_not_compile(templated: tuple[str, ...], static: tuple[tuple[str, str], ...],
                                  trace: bool) -> None:
    assert compile_head("POST", None, templated, static, "application/json", trace) is None
    assert isinstance(compile_head("POST", None, (), (("x-k", "v"),), "application/json", trace),
                      Head)
