"""The event's trace context on each request: sent unchanged, off per hook, read by
templates, a hook's own header first; the signature unchanged by it."""

from __future__ import annotations

from typing import Any

from hookd.events.decode import Event, Meta
from hookd.events.trace import TraceContext
from hookd.requests.signing import Signer
from tests.unit.requests.test_render import compile_one

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE = TraceContext(PARENT, "rojo=00f067aa0ba902b7")
META = Meta("cc.events", 0, 1)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def event(trace: TraceContext | None = TRACE) -> Event:
    return Event("Answered", "evt-1", {"event": "Answered", "id": "evt-1"}, META, trace)


def headers(hook_extra: dict[str, Any] | None = None, request: dict[str, Any] | None = None,
            trace: TraceContext | None = TRACE) -> dict[str, str]:
    hook = compile_one(request or {}, **(hook_extra or {}))
    return dict(hook.render(event(trace)).headers)


def test_sent_unchanged() -> None:
    sent = headers()
    assert sent["traceparent"] == PARENT
    assert sent["tracestate"] == "rojo=00f067aa0ba902b7"


def test_without_tracestate_only_traceparent() -> None:
    sent = headers(trace=TraceContext(PARENT))
    assert sent["traceparent"] == PARENT and "tracestate" not in sent


def test_no_trace_no_headers() -> None:
    sent = headers(trace=None)
    assert "traceparent" not in sent and "tracestate" not in sent


def test_off_per_hook_templates_still_read_it() -> None:
    sent = headers({"trace_context": False},
                   {"headers": {"X-Trace": "{{ trace.traceparent }}|{{ trace.tracestate }}"}})
    assert "traceparent" not in sent and "tracestate" not in sent
    assert sent["x-trace"] == f"{PARENT}|rojo=00f067aa0ba902b7"


def test_templates_see_empty_values_without_a_trace() -> None:
    sent = headers(request={"headers": {"X-Trace": "[{{ trace.traceparent }}]"}}, trace=None)
    assert sent["x-trace"] == "[]"


def test_the_hooks_own_header_wins_whole() -> None:
    own = headers(request={"headers": {"Traceparent": "{{ trace.traceparent }}",
                                       "X-A": "1"}})
    assert own["traceparent"] == PARENT
    assert "tracestate" not in own  # the automatic pair is off: not half of it
    hook = compile_one({"headers": {"traceparent": "{{ trace.traceparent }}"}})
    names = [name for name, _ in hook.render(event()).headers]
    assert names.count("traceparent") == 1


def test_signature_does_not_cover_the_trace_headers() -> None:
    hook = compile_one({}, signing={"secret": SECRET})
    with_trace, without = hook.render(event()), hook.render(event(None))
    assert with_trace.headers != without.headers
    signer = hook.signer
    assert isinstance(signer, Signer)
    signed = with_trace.signed_headers(signer, 1_700_000_000)
    assert signed["webhook-signature"] == \
        without.signed_headers(signer, 1_700_000_000)["webhook-signature"]
    assert signed["traceparent"] == PARENT
