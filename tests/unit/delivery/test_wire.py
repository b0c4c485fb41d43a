"""hookd.delivery.wire: what a URL means to the client and the bytes of a request."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookd.delivery.wire import encode_request
from hookd.requests.target import InvalidTarget, target_of


@pytest.mark.parametrize(("url", "host", "port", "host_header", "path"), [
    ("http://crm.example/a/b?x=1&y=%20", "crm.example", 80, "crm.example", "/a/b?x=1&y=%20"),
    ("https://crm.example:8443", "crm.example", 8443, "crm.example:8443", "/"),
    ("http://[::1]:8080/v", "::1", 8080, "[::1]:8080", "/v"),
    ("https://10.1.2.3/", "10.1.2.3", 443, "10.1.2.3", "/"),
])
def test_target_of(url: str, host: str, port: int, host_header: str, path: str) -> None:
    t = target_of(url)
    assert (t.host, t.port, t.host_header, t.path) == (host, port, host_header, path)


def test_endpoint_is_scheme_host_and_port() -> None:
    assert target_of("https://crm.example.com/x?y=1").endpoint == "https://crm.example.com:443"
    assert target_of("http://127.0.0.1:8080/a").endpoint == "http://127.0.0.1:8080"


@pytest.mark.parametrize("url", ["http://127.1/", "http://0x7f.0.0.1/", "http://2130706433/",
                                 "http://010.0.0.1/", "ftp://crm.example/", "/relative"])
def test_target_of_refuses_what_can_never_be_sent(url: str) -> None:
    with pytest.raises(InvalidTarget):
        target_of(url)


def test_encode_request() -> None:
    t = target_of("http://crm.example:8080/p?q=1")
    assert encode_request("POST", t, {"a": "1"}, b"") == (
        b"POST /p?q=1 HTTP/1.1\r\nHost: crm.example:8080\r\na: 1\r\nContent-Length: 0\r\n\r\n")
    assert encode_request("GET", t, {"HOST": "other"}, b"") == (
        b"GET /p?q=1 HTTP/1.1\r\nHOST: other\r\n\r\n")
    for bad in ({"a": "1\r\nX-Injected: 1"}, {"a\n": "1"}, {"a": "nul\x00"},
                {"a": "lone\r"}, {"a": "1", "b\r": "2"}):
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            encode_request("POST", t, bad, b"{}")


_TEXT = st.text(st.sampled_from("ab:\r\n\x00 é"), max_size=6)


@given(st.dictionaries(_TEXT, _TEXT, max_size=4))
def test_encode_request_refuses_exactly_what_breaks_framing(headers: dict[str, str]) -> None:
    """Refused iff a name or a value holds CR, LF or NUL; otherwise each header is one line."""
    t = target_of("http://crm.example/p")
    bad = any(c in k + v for k, v in headers.items() for c in "\r\n\x00")
    if bad:
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            encode_request("POST", t, headers, b"{}")
        return
    head = encode_request("POST", t, headers, b"{}").decode().split("\r\n\r\n")[0]
    assert head.split("\r\n")[1:] == [
        *([] if any(k.lower() == "host" for k in headers) else ["Host: crm.example"]),
        *(f"{k}: {v}" for k, v in headers.items()), "Content-Length: 2"]
