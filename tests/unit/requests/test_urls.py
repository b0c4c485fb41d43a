"""URL templates: each `{{ }}` encoded for where it stands, literal text as written,
`|url_raw` the opt-out; the rendered URL keeps the scheme, host and segments written."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hookd.errors import RenderError, SpecError
from hookd.requests.compile import compile_hook
from hookd.requests.urls import Part, compile_url, encode_value, fixed_origin, parse_url, part_at
from tests.unit.requests.test_render import compile_one, event, hook_config, render_error

# ------------------------------------------------------------------------------ encoder


@pytest.mark.parametrize(("text", "part", "encoded"), [
    pytest.param("m-91d2", Part.PATH, "m-91d2", id="plain"),
    pytest.param("../../admin", Part.PATH, "..%2F..%2Fadmin", id="path-traversal"),
    pytest.param("..", Part.PATH, "%2E%2E", id="dot-dot"),
    pytest.param(".", Part.PATH, "%2E", id="dot"),
    pytest.param("...", Part.PATH, "%2E%2E%2E", id="dots-only"),
    pytest.param("a.b", Part.PATH, "a.b", id="dot-inside"),
    pytest.param("%2e%2e/", Part.PATH, "%252e%252e%2F", id="pre-encoded-dots"),
    pytest.param("..%2f", Part.PATH, "..%252f", id="pre-encoded-slash"),
    pytest.param("a?b#c&d=e;f", Part.PATH, "a%3Fb%23c%26d%3De%3Bf", id="path-syntax"),
    pytest.param("x&admin=true#frag", Part.QUERY, "x%26admin%3Dtrue%23frag", id="query-syntax"),
    pytest.param("a+b c%", Part.QUERY, "a%2Bb%20c%25", id="plus-space-percent"),
    pytest.param("a/b?c:d@e", Part.QUERY, "a/b?c:d@e", id="query-keeps"),
    pytest.param("..", Part.QUERY, "..", id="dots-in-query"),
    pytest.param("Zoë ü", Part.PATH, "Zo%C3%AB%20%C3%BC", id="unicode"),
    pytest.param("x#y", Part.FRAGMENT, "x%23y", id="fragment"),
    pytest.param("[::1]:8080", Part.AUTHORITY, "[::1]:8080", id="host-port"),
    pytest.param("evil.example/x?@", Part.AUTHORITY, "evil.example%2Fx%3F%40", id="host-syntax"),
    pytest.param("", Part.PATH, "", id="empty"),
])
def test_encode_value(text: str, part: Part, encoded: str) -> None:
    assert encode_value(text, part) == encoded


@pytest.mark.parametrize(("prefix", "part"), [
    ("", Part.AUTHORITY), ("https://", Part.AUTHORITY), ("https://crm.example", Part.AUTHORITY),
    ("https://crm.example:", Part.AUTHORITY), ("https://crm.example/", Part.PATH),
    ("  https://crm.example/a/", Part.PATH), ("https://crm.example/a?", Part.QUERY),
    ("https://crm.example?", Part.QUERY), ("https://crm.example/a?b=1&c=", Part.QUERY),
    ("https://crm.example/a?b#", Part.FRAGMENT), ("https://crm.example/#x?", Part.FRAGMENT),
])
def test_part_at(prefix: str, part: Part) -> None:
    assert part_at(prefix) is part


# --------------------------------------------------------------------- rendered URLs

BASE = "https://crm.example.com"
EVIL = {"event": "Answered", "id": "../../admin", "name": "x&admin=true#frag"}


@pytest.mark.parametrize(("url", "payload", "rendered"), [
    pytest.param(BASE + "/items/{{ id }}?name={{ name }}", EVIL,
                 BASE + "/items/..%2F..%2Fadmin?name=x%26admin%3Dtrue%23frag", id="issue-22"),
    pytest.param(BASE + "/items/{{ id }}/x", {"id": "%2e%2e/"},
                 BASE + "/items/%252e%252e%2F/x", id="encoded-dots"),
    pytest.param(BASE + "/items/{{ id }}/x", {"id": "..%2f"}, BASE + "/items/..%252f/x",
                 id="encoded-slash"),
    pytest.param(BASE + "/items/{{ id }}/x", {"id": ".."}, BASE + "/items/%2E%2E/x",
                 id="dot-segment"),
    pytest.param(BASE + "/i/{{ a }}?{{ a }}={{ a }}", {"a": "k=v&x"},
                 BASE + "/i/k%3Dv%26x?k%3Dv%26x=k%3Dv%26x", id="key-and-value"),
    pytest.param(BASE + "/u/{{ n }}?q={{ n }}", {"n": "Zoë Ortiz"},
                 BASE + "/u/Zo%C3%AB%20Ortiz?q=Zo%C3%AB%20Ortiz", id="unicode-space"),
    pytest.param(BASE + "/q/{{ q }}/c/{{ c }}?q={{ q }}&c={{ c }}", {"q": 7, "c": None},
                 BASE + "/q/7/c/None?q=7&c=None", id="int-and-null"),
    pytest.param("{{ base|url_raw }}/calls/{{ id }}", {"base": BASE + "/v2", "id": "a/b"},
                 BASE + "/v2/calls/a%2Fb", id="raw-base-url"),
    pytest.param(BASE + "/{{ path|url_raw }}?x={{ path }}", {"path": "a/b/c"},
                 BASE + "/a/b/c?x=a/b/c", id="raw-path"),
    pytest.param(BASE + "/{% if q %}?q={% else %}p/{% endif %}{{ v }}", {"q": 0, "v": "a/?"},
                 BASE + "/p/a%2F%3F", id="branch-path"),
    pytest.param(BASE + "/{% if q %}?q={% else %}p/{% endif %}{{ v }}", {"q": 1, "v": "a/?&"},
                 BASE + "/?q=a/?%26", id="branch-query"),
    pytest.param(BASE + "/{% set s %}{{ v }}.json{% endset %}{{ s }}", {"v": "../x"},
                 BASE + "/..%2Fx.json", id="captured-once"),
    pytest.param(BASE + "/{{ v ~ '/' ~ v }}", {"v": "a"}, BASE + "/a%2Fa", id="expression"),
    pytest.param(BASE + "/a b/é/{{ v }}", {"v": "é"}, BASE + "/a%20b/%C3%A9/%C3%A9",
                 id="literal-requoted"),
    pytest.param(BASE + "/a/../b/%2E/{{ v }}", {"v": "x"}, BASE + "/a/../b/%2E/x",
                 id="literal-as-written"),
    pytest.param("https://{{ tenant }}.crm.example:{{ port }}/x", {"tenant": "acme", "port": 8443},
                 "https://acme.crm.example:8443/x", id="templated-host"),
])
def test_rendered_url(url: str, payload: dict[str, Any], rendered: str) -> None:
    assert compile_one({"url": url}).render(event({"event": "Answered", **payload})).url == (
        rendered)


@pytest.mark.parametrize(("url", "payload"), [
    ("https://{{ tenant }}.crm.example/x", {"tenant": "evil.example/"}),
    ("https://{{ tenant }}.crm.example/x", {"tenant": "evil.example?"}),
    ("https://{{ tenant }}.crm.example/x", {"tenant": "me@evil.example"}),
    ("https://crm.example{{ tail }}", {"tail": "/admin"}),
])
def test_a_value_that_would_move_the_host_does_not_parse(url: str,
                                                        payload: dict[str, Any]) -> None:
    assert render_error({"url": url}, {"event": "Answered", **payload}).startswith("url '")


def test_a_lone_surrogate_is_a_render_error() -> None:
    message = render_error({"url": BASE + "/{{ v }}"}, {"v": "\ud800"})
    assert message.startswith("url template: UnicodeEncodeError")


def test_parse_url_keeps_dots_and_encoded_dots() -> None:
    """yarl's own parse decodes %2E and drops dot segments: /items/%2E%2E would become /."""
    assert str(parse_url(BASE + "/items/%2E%2E/.%2E/x")) == BASE + "/items/%2E%2E/.%2E/x"
    assert str(parse_url("HTTPS://Bücher.DE:443/Ä?q=ä")) == (
        "https://xn--bcher-kva.de/%C3%84?q=%C3%A4")


@pytest.mark.parametrize(("source", "origin"), [
    (BASE + "/x/{{ a }}", ("https", "crm.example.com", 443)),
    ("  http://Crm.Example:8080?{{ a }}", ("http", "crm.example", 8080)),
    ("https://{{ host }}/x", None), ("https://crm.example{{ port }}/x", None),
    ("{{ base|url_raw }}/x", None), (BASE + "/fixed", ("https", "crm.example.com", 443)),
])
def test_fixed_origin(source: str, origin: tuple[str, str, int] | None) -> None:
    assert fixed_origin(source) == origin


@pytest.mark.parametrize(("url", "message"), [
    (BASE + "/m/${member_id}", "${member_id} is not substituted in a url (only in raw_body); "
                               "write {{ member_id }}, encoded for where it stands"),
    (BASE + "/m/{{ a", "template syntax: unexpected end of template, expected 'end of print "
                       "statement'."),
    (BASE + "/m/\x00", "url contains a NUL or SOH character"),
])
def test_compile_errors(url: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        compile_url(url, ("request", "url"))
    assert (caught.value.message, caught.value.path) == (message, ("request", "url"))


def test_url_raw_is_a_url_filter_only() -> None:
    _, errors = compile_hook(hook_config({"headers": {"X-A": "{{ id|url_raw }}"}}), 1.0, ())
    assert [(e.path, e.message) for e in errors] == [
        (("request", "headers", "X-A"), "template syntax: No filter named 'url_raw'.")]


# ------------------------------------------------------------------------ properties

VALUES = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.sampled_from(["..", ".", "../", "%2e%2e/", "..%2f", "?", "#", "&", "=", "+", "%", " ",
                     "a/b", "@", "\\", "%00", "é"]),
    st.lists(st.sampled_from(["..", "/", ".", "%2e", "?", "#", "&", "=", "a"]), max_size=6)
    .map("".join))


@settings(max_examples=300, deadline=None)
@given(VALUES, VALUES)
def test_values_never_change_segments_or_keys(a: str, b: str) -> None:
    hook = compile_one({"url": BASE + "/items/{{ a }}/x/{{ b }}.json?name={{ a }}&k={{ b }}"
                               "#{{ b }}"})
    url = urlsplit(hook.render(event({"event": "Answered", "a": a, "b": b})).url)
    assert (url.scheme, url.netloc) == ("https", "crm.example.com")
    segments = url.path.split("/")
    assert [len(segments), segments[1], segments[3]] == [5, "items", "x"]
    assert segments[2] not in (".", "..") and unquote(segments[2]) == a
    assert unquote(segments[4]) == b + ".json"
    assert parse_qsl(url.query, keep_blank_values=True) == [("name", a), ("k", b)]
    assert unquote(url.fragment) == b


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(VALUES, VALUES, max_size=4))
def test_get_fields_query_is_built_from_pairs(fields: dict[str, str]) -> None:
    """GET without body: the payload's fields are the query, whatever their names hold.
    (A field named `event` would replace the event's name: that is another test's case.)"""
    assume("event" not in fields)
    hook = compile_one({"method": "GET", "url": BASE + "/pop/{{ event }}?src=hookd"})
    url = urlsplit(hook.render(event({"event": "Answered", **fields})).url)
    assert url.path == "/pop/Answered"
    expected = [("src", "hookd"), ("event", "Answered"),
                *((k, v) for k, v in fields.items() if k != "event")]
    assert parse_qsl(url.query, keep_blank_values=True) == expected
    assert url.fragment == ""


def test_get_map_renames_into_encoded_keys() -> None:
    hook = compile_one({"method": "GET", "fields": ["name"], "map": {"name": "n&admin=1"}})
    url = hook.render(event({"event": "Answered", "name": "x&y=z#f"})).url
    assert url == BASE + "/calls?n%26admin%3D1=x%26y%3Dz%23f"


def test_a_rendered_url_must_keep_the_scheme_and_host_written() -> None:
    """The last check after rendering (encoding already keeps them: forced here)."""
    hook = compile_one({"url": BASE + "/x/{{ id }}"})
    assert hook.url.origin == ("https", "crm.example.com", 443)
    hook.url.origin = ("https", "other.example", 443)
    with pytest.raises(RenderError) as caught:
        hook.render(event())
    assert str(caught.value) == (f"url '{BASE}/x/evt-1': its scheme or host is not the one "
                                 "the template writes")
