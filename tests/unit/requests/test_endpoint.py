"""A hook's endpoint (`scheme://host:port`), worked out once at compile from its URL as
written: known whenever the scheme and host are literal, whatever the path and query;
None only when a template writes the scheme, host or port. The same string as the
sender's key for every request the hook renders."""

from __future__ import annotations

import pytest

from hookd.requests.target import target_of
from hookd.requests.urls import origin_target
from tests.unit.requests.test_render import compile_one, event

SHAPES = [
    # fully literal
    ("https://crm.example.com/calls", "https://crm.example.com:443"),
    ("http://crm.example.com", "http://crm.example.com:80"),
    ("HTTPS://API.Example.com/x", "https://api.example.com:443"),
    ("https://bücher.de/x", "https://xn--bcher-kva.de:443"),
    ("  https://[2001:db8::1]/", "https://2001:db8::1:443"),
    ("http://10.0.0.1:8080?x=1", "http://10.0.0.1:8080"),
    # literal scheme://host:port, templated path or query: config/hooks.yaml's first hook
    ("https://crm.example:8443/calls/{{ member_call_id }}", "https://crm.example:8443"),
    ("https://crm.example/calls/{{ member_call_id }}", "https://crm.example:443"),
    ("http://crm.example:8080?id={{ member_call_id }}", "http://crm.example:8080"),
    ("https://crm.example/{% if reporting %}r{% else %}n{% endif %}/x",
     "https://crm.example:443"),
    ("https://crm.example/#{{ member_call_id }}", "https://crm.example:443"),
    # the template writes the host, the port or the scheme: decided per delivery
    ("https://{{ queue_name|lower }}.example.com/x", None),
    ("https://crm.example{{ '' }}/x", None),  # a value could extend the host
    ("https://crm.example:{{ queue_id }}/x", None),
    ("{{ 'https' }}://crm.example/x", None),
    ("{{ 'https://crm.example'|url_raw }}/x", None),
    ("https://crm.example{% if reporting %}/r{% endif %}", None),
]


@pytest.mark.parametrize(("url", "endpoint"), SHAPES)
def test_the_endpoint_of_each_url_shape(url: str, endpoint: str | None) -> None:
    hook = compile_one({"url": url})
    assert hook.endpoint == endpoint
    assert (hook.url.target.endpoint if hook.url.target else None) == endpoint


@pytest.mark.parametrize(("url", "endpoint"), [s for s in SHAPES if s[1] is not None])
def test_every_rendered_request_goes_to_that_endpoint(url: str, endpoint: str) -> None:
    """What the sender keys its Endpoint (circuit, slots) by, for a request the hook
    renders, is the compiled endpoint: the early circuit check and status find it."""
    request = compile_one({"url": url}).render(event())
    assert target_of(request.url).endpoint == endpoint


@pytest.mark.parametrize("url", ["ftp://crm.example/{{ id }}", "http://127.1/{{ id }}",
                                 "https://crm.example:99999/{{ id }}"])
def test_a_literal_origin_hookd_cannot_send_to_has_no_endpoint(url: str) -> None:
    assert origin_target(url) is None
