"""A hook's own render (render._headed_render, chosen at load for a hook with a compiled
head and no query per event) against CompiledHook.render, which does every case: the same
Request, field for field, or the same RenderError, over a table of hooks and events."""

from __future__ import annotations

from typing import Any

import pytest

from hookd.errors import RenderError
from hookd.events.decode import Event, Meta
from hookd.events.trace import TraceContext
from hookd.requests.render import CompiledHook, Request
from tests.unit.requests.test_render import PAYLOAD, compile_one

TRACE = TraceContext("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "rojo=1")

HOOKS: list[tuple[dict[str, Any], dict[str, Any]]] = [  # (request, the rest of the hook)
    ({}, {}),
    ({"headers": {"X-Sent": "{{ talk_sec }}"}}, {}),
    ({"headers": {"X-Sent": "{{ talk_sec }}", "X-Fixed": "yes", "X-Agent": "{{ agent.name }}",
                  "X-Jinja": "{% if reporting %}r{% endif %}"}},
     {"auth": {"type": "bearer", "token": "t"},
      "signing": {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}),
    ({"headers": {"X-Agent": "{{ agent_name }}"}}, {}),  # CR, LF, NUL in some events
    ({"headers": {"X-Missing": "{{ agent.phone }}"}}, {}),  # Jinja2's error
    ({"headers": {"traceparent": "{{ id }}"}}, {}),  # the hook's win: no trace headers
    ({"url": "https://crm.example.com/q/{{ event|lower }}"}, {}),
    ({"url": "{{ base|url_raw }}/x", "headers": {"X-A": "{{ id }}"}}, {}),  # origin checked
    ({"url": "https://crm.example.com/{{ nope }}"}, {}),
    ({"body": '{"a": {{ agent_name|tojson }}, "b": {{ talk_sec }}}'}, {}),
    ({"body": '{"a": {{ quote }}}'}, {}),  # not JSON: the body's error
    ({"raw_body": '{"a": "${agent_name}", "q": ${queue_id}}'}, {}),
    ({"raw_body": "${nope}"}, {}),
    ({"method": "PUT", "fields": ["id", "agent.name"], "map": {"id": "event_id"}},
     {"trace_context": False}),
    ({"method": "DELETE"}, {}),
    ({"method": "GET"}, {}),  # fields to the query: CompiledHook.render's
    ({"query": {"q": "{{ id }}"}}, {}),
]
EVENTS = [
    Event("Answered", "evt-1", dict(PAYLOAD), Meta("cc.events", 1, 2)),
    Event("Call:Hangup", "evt-2", {**PAYLOAD, "agent_name": "a\r\nX-Evil: 1",
                                   "base": "https://crm.example.com"},
          Meta("cc.events", 1, 3, key="k"), TRACE),
    Event("Answered", "evt-3", {**PAYLOAD, "agent_name": "x\x00", "base": "https://evil.example"},
          Meta("cc.events", 0, 4), TRACE),
    Event("Answered", "evt-4", {"event": "Answered"}, Meta("cc.events", 0, 5)),
]


def _outcome(render: Any, event: Event) -> Request | str:
    try:
        result: Request = render(event)
    except RenderError as exc:
        return f"RenderError: {exc}"
    return result


@pytest.mark.parametrize(("request_", "extra"), HOOKS)
def test_a_hooks_own_render_gives_what_the_general_one_gives(request_: dict[str, Any],
                                                             extra: dict[str, Any]) -> None:
    hook = compile_one(request_, **extra)
    for event in EVENTS:
        own = _outcome(hook.render, event)
        general = _outcome(lambda e: CompiledHook.render(hook, e), event)
        assert own == general, (request_, event.id)
        if isinstance(own, Request):
            assert own.__class__ is Request and own._fields == general._fields  # type: ignore[union-attr]


def test_the_common_hooks_have_their_own_render_the_others_the_general_one() -> None:
    """Not vacuous: most of the table takes the hook's own render."""
    own = [request_ for request_, extra in HOOKS
           if "render" in vars(compile_one(request_, **extra))]
    assert len(own) == len(HOOKS) - 2
    assert {"method": "GET"} not in own and {"query": {"q": "{{ id }}"}} not in own
