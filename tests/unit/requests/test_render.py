"""Rendering a hook's request for an event: body modes, templates, context, sandbox."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from hookd import USER_AGENT
from hookd.config import HookConfig
from hookd.errors import RenderError, SpecError
from hookd.events.decode import Event, Meta
from hookd.requests.compile import compile_hook, lint_raw_hook
from hookd.requests.render import CompiledHook
from hookd.requests.signing import Signer, webhook_id

PAYLOAD: dict[str, Any] = {
    "event": "Answered",
    "id": "evt-1",
    "queue_id": 7,
    "queue_name": "Support",
    "member_call_id": "m-91d2",
    "agent_name": "Dana Ortiz",
    "quote": 'he said "hi" \\ bye',
    "talk_sec": 12.5,
    "reporting": True,
    "muted": False,
    "cause": None,
    "tags": ["vip", "emea"],
    "agent": {"name": "Dana", "email": "dana@example.com"},
    "variables": {"priority": "high"},
}
META = Meta("cc.events", 3, 42, key="call-1", timestamp=1_700_000_000_000,
            headers={"traceparent": "00-abc-def-01"})


def event(payload: Mapping[str, Any] | None = None, name: str = "Answered",
          event_id: str = "evt-1") -> Event:
    return Event(name, event_id, dict(PAYLOAD if payload is None else payload), META)


def hook_config(request: Mapping[str, Any], **extra: Any) -> HookConfig:
    data = {"id": "crm", "description": "CRM hook", "event": ["Answered"],
            "request": {"url": "https://crm.example.com/calls", **request}, **extra}
    return HookConfig.model_validate(data)


def compile_one(request: Mapping[str, Any] | None = None, *, timeout: float = 10.0,
                schedule: tuple[float, ...] = (5.0, 300.0), **extra: Any) -> CompiledHook:
    hook, errors = compile_hook(hook_config(request or {}, **extra), timeout, schedule)
    assert errors == []
    assert hook is not None
    return hook


def render_error(request: Mapping[str, Any], payload: Mapping[str, Any] | None = None) -> str:
    hook = compile_one(request)
    with pytest.raises(RenderError) as caught:
        hook.render(event(payload))
    return str(caught.value)


def query_of(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


# ------------------------------------------------------------------------- body modes


def test_jinja_body() -> None:
    hook = compile_one({"body": '{"call": {{ member_call_id|tojson }}, '
                                '"agent": {{ agent_name|tojson }}, "sec": {{ talk_sec }}}\n'})
    req = hook.render(event())
    assert req.body == b'{"call": "m-91d2", "agent": "Dana Ortiz", "sec": 12.5}\n'
    assert req.method == "POST"
    assert req.url == "https://crm.example.com/calls"


def test_raw_body_substitutes_and_escapes_for_json() -> None:
    hook = compile_one({"raw_body": '{"q": "${quote}", "n": ${queue_id}, "sec": ${talk_sec}, '
                                    '"agent": "${agent.name}", "tags": ${tags}, '
                                    '"on": ${reporting}, "cause": ${cause}, "id": "${ id }"}'})
    body = hook.render(event()).body
    assert body == (b'{"q": "he said \\"hi\\" \\\\ bye", "n": 7, "sec": 12.5, "agent": "Dana", '
                    b'"tags": ["vip","emea"], "on": true, "cause": null, "id": "evt-1"}')
    assert orjson.loads(body)["q"] == PAYLOAD["quote"]


def test_raw_body_not_json_is_not_escaped() -> None:
    hook = compile_one({"raw_body": "q=${quote}&n=${queue_id}", "content_type": "text/plain"})
    assert hook.render(event()).body == b'q=he said "hi" \\ bye&n=7'


def test_raw_body_fields_are_read_as_get_path_reads_them() -> None:
    """A top-level key with a dot wins over descending; any Mapping payload reads the same."""
    hook = compile_one({"raw_body": "${a.b}|${a}|${x.y}|${x.0}", "content_type": "text/plain"})
    payload = {"a.b": "top", "a": "A", "x": {"y": 1, "0": "zero"}}
    assert hook.render(event(payload)).body == b"top|A|1|zero"
    proxied = Event("Answered", "evt-1", MappingProxyType(payload), META)
    assert hook.render(proxied).body == b"top|A|1|zero"


def test_raw_body_lone_surrogate_is_the_encoders_error() -> None:
    with pytest.raises(orjson.JSONEncodeError) as caught:
        orjson.dumps("\ud800")
    assert render_error({"raw_body": '{"q": "${quote}"}'}, {**PAYLOAD, "quote": "\ud800"}) == (
        f"body: {type(caught.value).__name__}: {caught.value}")


def test_raw_body_missing_field_is_a_render_error() -> None:
    assert render_error({"raw_body": '{"x": "${member_id}"}'}) == (
        "raw_body: no field 'member_id' in the event")


def test_default_body_is_the_whole_payload() -> None:
    req = compile_one().render(event())
    assert orjson.loads(req.body) == PAYLOAD
    assert list(orjson.loads(req.body)) == list(PAYLOAD)


def test_fields_select_and_map_renames() -> None:
    hook = compile_one({"fields": ["member_call_id", "agent.name", "talk_sec", "absent",
                                   "agent.email"],
                        "map": {"agent.name": "agent", "member_call_id": "call"}})
    assert hook.render(event()).body == (
        b'{"call":"m-91d2","agent":"Dana","talk_sec":12.5,"agent.email":"dana@example.com"}')


def test_map_without_fields_renames_in_the_whole_payload() -> None:
    hook = compile_one({"map": {"agent_name": "agent_full_name"}})
    body = orjson.loads(hook.render(event()).body)
    assert body["agent_full_name"] == "Dana Ortiz"
    assert "agent_name" not in body
    assert len(body) == len(PAYLOAD)


def test_get_fields_become_query_parameters() -> None:
    hook = compile_one({"method": "GET", "url": "https://crm.example.com/popup?src=hookd",
                        "fields": ["member_call_id", "queue_id", "talk_sec", "reporting",
                                   "muted", "cause", "tags", "agent", "agent.name", "quote"],
                        "map": {"agent.name": "agent_name", "member_call_id": "call"}})
    req = hook.render(event())
    assert req.method == "GET"
    assert req.body == b""
    assert urlsplit(req.url).path == "/popup"
    assert query_of(req.url) == [
        ("src", "hookd"), ("call", "m-91d2"), ("queue_id", "7"), ("talk_sec", "12.5"),
        ("reporting", "true"), ("muted", "false"), ("cause", ""), ("tags", '["vip","emea"]'),
        ("agent", '{"name":"Dana","email":"dana@example.com"}'), ("agent_name", "Dana"),
        ("quote", 'he said "hi" \\ bye')]


def test_get_without_fields_sends_the_whole_payload_as_query() -> None:
    req = compile_one({"method": "GET"}).render(event({"event": "X", "a": 1, "b": "two"}))
    assert query_of(req.url) == [("event", "X"), ("a", "1"), ("b", "two")]
    assert req.body == b""


def test_get_with_query_templates_only_sends_those() -> None:
    req = compile_one({"method": "GET", "query": {"call": "{{ member_call_id }}"}}).render(event())
    assert query_of(req.url) == [("call", "m-91d2")]


def test_get_with_query_and_fields_sends_both() -> None:
    req = compile_one({"method": "GET", "query": {"call": "{{ member_call_id }}"},
                       "fields": ["queue_id"]}).render(event())
    assert query_of(req.url) == [("call", "m-91d2"), ("queue_id", "7")]


def test_query_templates_extend_the_url() -> None:
    hook = compile_one({"url": "https://crm.example.com/calls/{{ member_call_id }}?v=2",
                        "query": {"agent": "{{ agent_name }}", "q": "{{ quote }}",
                                  "static": "x&y=z"}})
    req = hook.render(event())
    assert urlsplit(req.url).path == "/calls/m-91d2"
    assert query_of(req.url) == [("v", "2"), ("agent", "Dana Ortiz"),
                                 ("q", 'he said "hi" \\ bye'), ("static", "x&y=z")]


def test_url_template_data_is_percent_encoded() -> None:
    req = compile_one({"url": "https://crm.example.com/x/{{ quote }}"}).render(event())
    assert req.url == "https://crm.example.com/x/he%20said%20%22hi%22%20%5C%20bye"


# ------------------------------------------------------------------------- headers


def test_header_templates_and_fixed_headers() -> None:
    hook = compile_one({"headers": {"X-Source": "hookd", "X-Call": "{{ member_call_id }}"},
                        "content_type": "application/vnd.crm+json"},
                       auth={"type": "bearer", "token": "tok-123"})
    req = hook.render(event())
    assert req.headers == (
        ("x-source", "hookd"), ("x-call", "m-91d2"), ("authorization", "Bearer tok-123"),
        ("content-type", "application/vnd.crm+json"), ("user-agent", USER_AGENT),
        ("webhook-id", webhook_id("evt-1", "crm")))
    assert USER_AGENT == "hookd/0.1.0"
    assert req.webhook_id == webhook_id("evt-1", "crm")


@pytest.mark.parametrize("value", [
    pytest.param("x\r\nX-Injected: 1", id="crlf"),
    pytest.param("x\nX-Injected: 1", id="lf"),
    pytest.param("x\rX-Injected: 1", id="cr"),
    pytest.param("x\x00y", id="nul"),
])
def test_header_injection_from_event_data_is_refused(value: str) -> None:
    message = render_error({"headers": {"X-Agent": "{{ agent_name }}"}},
                           {**PAYLOAD, "agent_name": value})
    assert message == "header x-agent: value contains CR, LF or NUL"


def test_signed_headers() -> None:
    signer = Signer.from_secrets(["whsec_g4dtUC07hnLrHs7aZYFDyBOph50j11SE"])
    req = compile_one().render(event())
    plain = req.signed_headers(None, 1_700_000_000)
    assert plain["webhook-timestamp"] == "1700000000"
    assert "webhook-signature" not in plain
    signed = req.signed_headers(signer, 1_700_000_000)
    assert signed["webhook-signature"] == signer.signature(req.webhook_id, 1_700_000_000,
                                                           req.body)
    assert signed["webhook-id"] == req.webhook_id
    assert "webhook-timestamp" not in dict(req.headers)  # fresh per attempt, not stored


# ------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("request_", "message"), [
    pytest.param({"url": "https://x.example/{{ nope }}"}, "url template: 'nope' is undefined",
                 id="url"),
    pytest.param({"headers": {"X-A": "{{ nope }}"}}, "header x-a template: 'nope' is undefined",
                 id="header"),
    pytest.param({"query": {"q": "{{ nope }}"}}, "query q template: 'nope' is undefined",
                 id="query"),
    pytest.param({"body": '{"a": {{ nope|tojson }}}'}, "body template: 'nope' is undefined",
                 id="body"),
    pytest.param({"body": '{"a": "{{ agent.phone }}"}'},
                 "body template: 'dict object' has no attribute 'phone'", id="missing-attribute"),
    pytest.param({"body": '{"a": "{{ nope or "" }}"}'}, "body template: 'nope' is undefined",
                 id="no-silent-default"),
    pytest.param({"body": '{"a": {{ [1, nope]|tojson }}}'}, "body template: 'nope' is undefined",
                 id="undefined-inside-tojson"),
])
def test_undefined_names_are_errors(request_: Mapping[str, Any], message: str) -> None:
    assert render_error(request_) == message


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "application/cloudevents+json", "Application/JSON"])
def test_json_body_must_be_json(content_type: str) -> None:
    message = render_error({"body": "call {{ member_call_id }}", "content_type": content_type})
    assert message.startswith("body is not valid JSON: ")


def test_non_json_content_type_allows_any_body() -> None:
    hook = compile_one({"body": "call {{ member_call_id }}", "content_type": "text/plain"})
    assert hook.render(event()).body == b"call m-91d2"


@pytest.mark.parametrize(("url", "payload_url"), [
    pytest.param("/calls", None, id="relative"),
    pytest.param("ftp://crm.example.com/x", None, id="ftp"),
    pytest.param("https:///no-host", None, id="no-host"),
    pytest.param("{{ target }}", "crm.example.com/x", id="templated-without-scheme"),
    pytest.param("{{ target }}", "", id="templated-empty"),
    pytest.param("{{ target }}", "javascript:alert(1)", id="templated-other-scheme"),
])
def test_url_must_be_absolute_http(url: str, payload_url: str | None) -> None:
    if payload_url is None:  # a fixed URL: refused when the config is loaded, not per event
        _, errors = compile_hook(hook_config({"url": url}), 10.0, (5.0,))
        [error] = errors
        assert error.path == ("request", "url")
        message = error.message
    else:
        message = render_error({"url": url}, {**PAYLOAD, "target": payload_url})
    assert message.startswith("url is not an absolute http(s) URL: ")


@pytest.mark.parametrize("host", ["127.1", "0x7f.0.0.1", "2130706433"])
def test_a_non_canonical_ipv4_host_is_refused_at_load_and_at_render(host: str) -> None:
    _, errors = compile_hook(hook_config({"url": f"http://{host}/x"}), 10.0, (5.0,))
    assert [(e.path, "canonical IPv4" in e.message) for e in errors] == [
        (("request", "url"), True)]
    message = render_error({"url": "{{ target|url_raw }}"},
                           {**PAYLOAD, "target": f"http://{host}/x"})
    assert "is not a canonical IPv4 address" in message


def test_a_fixed_url_gives_the_endpoint_the_sender_uses() -> None:
    """Normalised as the request's URL is (case, IDNA), so the early circuit check matches."""
    assert compile_one({"url": "https://API.Example.com/x"}).endpoint == (
        "https://api.example.com:443")
    assert compile_one({"url": "https://bücher.de/x"}).endpoint == (
        "https://xn--bcher-kva.de:443")
    assert compile_one({"url": "https://crm.example/{{ event }}"}).endpoint == (
        "https://crm.example:443")  # every URL shape: tests/unit/requests/test_endpoint.py
    assert compile_one({"url": "https://{{ event }}.example/"}).endpoint is None


@pytest.mark.parametrize("target", ["https://[::1/", "https://x.example:99999/"])
def test_unparseable_url_is_a_render_error(target: str) -> None:
    message = render_error({"url": "{{ target|url_raw }}"}, {**PAYLOAD, "target": target})
    assert message.startswith(f"url {target!r}: ")


def test_a_whole_url_from_event_data_needs_url_raw() -> None:
    """Encoded, `http://host/x` is no URL at all: a value that is URL syntax is opted in."""
    payload = {**PAYLOAD, "target": "https://other.example/x"}
    assert render_error({"url": "{{ target }}"}, payload).startswith(
        "url is not an absolute http(s) URL: ")
    hook = compile_one({"url": "{{ target|url_raw }}"})
    assert hook.render(event(payload)).url == "https://other.example/x"
    assert hook.url.raw and not compile_one({"url": "https://x.example/{{ id }}"}).url.raw


@pytest.mark.parametrize(("body", "message"), [
    pytest.param("{{ 1 / 0 }}", "body template: ZeroDivisionError: division by zero",
                 id="zero-division"),
    pytest.param("{{ (2 ** 70)|tojson }}", "body template: TypeError: Integer exceeds 64-bit range",
                 id="tojson-overflow"),
    pytest.param("{{ 'a' + 1 }}", "body template: TypeError:", id="type-error"),
])
def test_any_template_exception_is_a_render_error(body: str, message: str) -> None:
    assert render_error({"body": body, "content_type": "text/plain"}).startswith(message)


# ------------------------------------------------------------------------- context


def test_template_context() -> None:
    hook = compile_one({"body": """{{ {
        "event": event, "event_field": payload.event, "queue": queue_name,
        "payload_keys": payload|list|length, "id": id,
        "topic": meta.topic, "partition": meta.partition, "offset": meta.offset,
        "key": meta.key, "timestamp": meta.timestamp, "trace": meta.headers.traceparent,
        "hook": hook.id, "description": hook.description, "priority": variables.priority,
        "agent": agent.name, "upper": event|upper}|tojson }}"""})
    body = orjson.loads(hook.render(event(name="ANSWERED")).body)
    assert body == {
        "event": "ANSWERED", "event_field": "Answered", "queue": "Support",
        "payload_keys": len(PAYLOAD), "id": "evt-1", "topic": "cc.events", "partition": 3,
        "offset": 42, "key": "call-1", "timestamp": 1_700_000_000_000,
        "trace": "00-abc-def-01", "hook": "crm", "description": "CRM hook", "priority": "high",
        "agent": "Dana", "upper": "ANSWERED"}


def test_reserved_context_names_win_over_payload_fields() -> None:
    hook = compile_one({"body": "{{ [event, hook.id, meta.offset, payload.meta]|tojson }}"})
    req = hook.render(event({"event": "Answered", "hook": "payload-hook", "meta": "payload-meta"}))
    assert orjson.loads(req.body) == ["Answered", "crm", 42, "payload-meta"]


def test_tojson_filter() -> None:
    hook = compile_one({"body": "{{ [agent_name, tags, cause, reporting, talk_sec, 'é']|tojson }}"})
    assert hook.render(event()).body == '["Dana Ortiz",["vip","emea"],null,true,12.5,"é"]'.encode()


def test_timeout_and_schedule_defaults_and_overrides() -> None:
    default = compile_one(timeout=7.0, schedule=(1.0, 2.0))
    assert (default.timeout, default.schedule) == (7.0, (1.0, 2.0))
    own = compile_one({"timeout": "500ms"}, timeout=7.0, schedule=(1.0, 2.0),
                      retry={"schedule": ["3s", "1m"]})
    assert (own.timeout, own.schedule) == (0.5, (3.0, 60.0))


def test_filter_is_compiled_into_the_predicate() -> None:
    hook = compile_one(filter={"queue_id": 7, "variables.priority": {"regex": "^high$"}})
    assert hook.predicate(PAYLOAD) is True
    assert hook.predicate({**PAYLOAD, "queue_id": 8}) is False


# ------------------------------------------------------------------------- sandbox (SSTI)

SSTI = [
    pytest.param("{{ ''.__class__.__mro__ }}", id="str-class-mro"),
    pytest.param("{{ cycler.__init__.__globals__ }}", id="cycler-globals"),
    pytest.param("{{ lipsum.__globals__ }}", id="lipsum-globals"),
    pytest.param("{{ payload.__class__ }}", id="payload-class"),
    pytest.param("{{ event.__class__.__base__.__subclasses__() }}", id="subclasses"),
    pytest.param("{{ [].append(1) }}", id="list-append"),
    pytest.param("{{ payload.update({'a': 1}) }}", id="payload-update"),
    pytest.param("{{ payload.pop('id') }}", id="payload-pop"),
    pytest.param("{{ variables.clear() }}", id="nested-clear"),
    pytest.param("{% for x in range(10**9) %}{{ x }}{% endfor %}", id="huge-range"),
    pytest.param("{{ range(10**9)|list|length }}", id="huge-range-list"),
    pytest.param("{{ 'a' * 10**9 }}", id="huge-string-repeat"),
    pytest.param("{{ [0] * 10**9 }}", id="huge-list-repeat"),
    pytest.param("{{ 10 ** (10 ** 10) }}", id="huge-power"),
    pytest.param("{{ self.__init__.__globals__ }}", id="self-globals"),
    pytest.param("{{ ''.format.__self__ }}", id="bound-method-self"),
]


@pytest.mark.parametrize("where", ["body", "url", "header"])
@pytest.mark.parametrize("template", SSTI)
def test_template_injection_is_refused(template: str, where: str) -> None:
    request: dict[str, Any] = {"content_type": "text/plain"}
    if where == "body":
        request["body"] = template
    elif where == "url":
        request["url"] = "https://crm.example.com/" + template
    else:
        request["headers"] = {"X-T": template}
    hook, errors = compile_hook(hook_config(request), 10.0, ())
    if hook is None:  # refused at load: fine too, as long as it is a located error
        assert errors and all(isinstance(e, SpecError) for e in errors)
        return
    before = dict(PAYLOAD)
    ev = event()
    with pytest.raises(RenderError):
        hook.render(ev)
    assert ev.payload == before


def test_bounded_repetition_is_still_allowed() -> None:
    hook = compile_one({"body": "{{ '-' * 3 }}{{ 2 ** 10 }}{{ [1] * 2 }}{{ 3 * 4 }}",
                        "content_type": "text/plain"})
    assert hook.render(event()).body == b"---1024[1, 1]12"


INJECTED = "{{ 7*7 }}{% raw %}${queue_id}"


@pytest.mark.parametrize("request_", [
    pytest.param({"body": '{"note": {{ note|tojson }}}'}, id="jinja-body"),
    pytest.param({"raw_body": '{"note": "${note}"}'}, id="raw-body"),
    pytest.param({}, id="default-body"),
    pytest.param({"fields": ["note"]}, id="fields-body"),
])
def test_event_data_is_never_evaluated_in_bodies(request_: Mapping[str, Any]) -> None:
    req = compile_one(request_).render(event({**PAYLOAD, "note": INJECTED}))
    assert orjson.loads(req.body)["note"] == INJECTED
    assert b"49" not in req.body


def test_event_data_is_never_evaluated_in_url_header_query() -> None:
    hook = compile_one({"url": "https://crm.example.com/n/{{ note }}",
                        "headers": {"X-Note": "{{ note }}"}, "query": {"n": "{{ note }}"}})
    req = hook.render(event({**PAYLOAD, "note": "{{ 7*7 }}"}))
    assert dict(req.headers)["x-note"] == "{{ 7*7 }}"
    assert query_of(req.url) == [("n", "{{ 7*7 }}")]
    assert "49" not in req.url


# ------------------------------------------------------------------------- compile errors


def test_compile_hook_collects_errors_relative_to_the_hook() -> None:
    config = hook_config({"url": "https://x.example/{{ a", "headers": {"X-A": "{% if %}",
                                                                      "Webhook-Signature": "x"},
                          "query": {"q": "{{ }}"}, "body": "{{ b"},
                         filter={"q": {"like": 1}},
                         auth={"type": "api_key", "header": "Content-Type", "value": "k"})
    hook, errors = compile_hook(config, 10.0, ())
    assert hook is None
    assert [e.path for e in errors] == [
        ("request", "url"), ("request", "headers", "X-A"), ("request", "query", "q"),
        ("request", "headers", "Webhook-Signature"), ("auth", "header"),
        ("filter", "q", "like"), ("request", "body")]
    assert all(e.message.startswith("template syntax: ") for e in errors if e.path[-1] in (
        "url", "X-A", "q", "body"))


def test_lint_raw_hook_reports_templates_filter_and_reserved_headers() -> None:
    errors = lint_raw_hook({"id": "x", "bogus": True, "filter": {"a": {"regex": "("}},
                            "auth": {"type": "api_key", "header": "webhook-id"},
                            "request": {"url": "{{ a", "body": "ok {{ b }}",
                                        "headers": {"X-A": "{{ c", "Host": "h", "X-B": 5},
                                        "query": {"q": "{% for %}"}}})
    assert sorted(e.path for e in errors) == sorted([
        ("request", "url"), ("request", "headers", "X-A"), ("request", "query", "q"),
        ("request", "headers", "Host"), ("auth", "header"), ("filter", "a", "regex")])
    assert lint_raw_hook("not a mapping") == []
    assert lint_raw_hook({"request": "not a mapping"}) == []


def test_unusable_tls_files_are_a_config_error_not_an_endpoint_failure(tmp_path: Any) -> None:
    _, errors = compile_hook(hook_config(
        {"url": "https://crm.example/x"}, tls={"ca_file": str(tmp_path / "missing.pem")}),
        10.0, (5.0,))
    assert [e.path for e in errors] == [("tls",)]
    assert "cannot use the TLS files" in errors[0].message
    hook = compile_one({"url": "https://crm.example/x"}, tls={"verify": False})
    assert hook.tls is not None and not hook.tls.check_hostname


def test_hooks_sharing_an_events_context_each_see_their_own_hook() -> None:
    """The context is built once per event and shared by the hooks that render it: each
    render sees its own `hook`, and a reloaded hook (compiled anew) its new definition."""
    body = {"body": '{"hook": {{ hook.id|tojson }}, "about": {{ hook.description|tojson }}, '
                    '"call": {{ meta.key|tojson }}}'}
    one = compile_one(body)
    other, errors = compile_hook(hook_config(body, id="billing", description="Billing"),
                                 10.0, (5.0,))
    assert errors == [] and other is not None
    shared = event()
    first, second, again = (h.render(shared) for h in (one, other, one))
    assert orjson.loads(first.body) == {"hook": "crm", "about": "CRM hook", "call": "call-1"}
    assert orjson.loads(second.body) == {"hook": "billing", "about": "Billing",
                                         "call": "call-1"}
    assert again.body == first.body
    reloaded, errors = compile_hook(hook_config(body, description="CRM, reloaded"), 10.0,
                                    (5.0,))
    assert errors == [] and reloaded is not None
    assert orjson.loads(reloaded.render(shared).body)["about"] == "CRM, reloaded"
    assert shared.context is not None and shared.context["payload"] is shared.payload
