"""The egress proxy as written in the config: `delivery.proxy` and a hook's `proxy` (a URL,
parsed once here), and `delivery.no_proxy` (each entry checked here; the matcher is
hookd.requests.proxy's)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal
from urllib.parse import unquote

from pydantic import AfterValidator, PlainSerializer, PlainValidator, WithJsonSchema
from yarl import URL

DIRECT = "none"  # a hook's `proxy: none`: straight to its endpoint, whatever delivery says


class ProxyUrl(str):
    """`http://[user:password@]host:port` as written and, split once when the config is
    loaded, its `host` (no brackets), `port`, `username`, `password` (percent-decoded)
    and `shown` (the URL with its credentials masked: what logs and `check` print)."""

    host: str
    port: int
    username: str | None
    password: str | None
    shown: str

    def __new__(cls, value: str) -> ProxyUrl:
        try:
            url = URL(value.strip(), encoded=True)
            port = url.explicit_port
        except ValueError as exc:
            raise ValueError(f"invalid proxy URL: {exc}") from None
        if url.scheme != "http":
            raise ValueError("a proxy URL is http://host:port, with user:password@ before "
                             "the host if the proxy asks for credentials (hookd talks plain "
                             "HTTP to the proxy, and TLS to https endpoints through a CONNECT "
                             f"tunnel), not {url.scheme or 'without a scheme'}")
        if not url.raw_host:
            raise ValueError("a proxy URL needs a host")
        if port is None:
            raise ValueError("a proxy URL needs its port, e.g. http://proxy.corp:3128")
        if url.raw_path not in ("", "/") or url.raw_query_string or url.raw_fragment:
            raise ValueError("a proxy URL has no path, query or fragment")
        self = super().__new__(cls, value.strip())
        self.host, self.port = url.raw_host, port
        self.username = unquote(url.raw_user) if url.raw_user is not None else None
        self.password = unquote(url.raw_password) if url.raw_password is not None else None
        shown_host = f"[{self.host}]" if ":" in self.host else self.host
        self.shown = (f"http://{'***@' if url.raw_user is not None else ''}"
                      f"{shown_host}:{port}")
        return self


def _proxy(value: object) -> ProxyUrl:
    if isinstance(value, ProxyUrl):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a proxy URL as a string, got {type(value).__name__}")
    return ProxyUrl(value)


def _hook_proxy(value: object) -> ProxyUrl | Literal["none"]:
    return "none" if value == DIRECT else _proxy(value)


def no_proxy_entry(entry: str) -> str:
    """One `no_proxy` entry as curl and requests take it: `*`, a host name (it and its
    subdomains; a leading dot changes nothing), an IP address or CIDR, each optionally
    with `:port`. Returned lower-cased, stripped."""
    text = entry.strip().lower()
    if not text:
        raise ValueError("an empty no_proxy entry")
    if text == "*":
        return text
    host, port = split_host_port(text)
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"no_proxy entry {entry!r}: invalid port {port!r}")
    try:
        ipaddress.ip_network(host, strict=False)
        return text
    except ValueError:
        pass
    name = host.lstrip(".").rstrip(".")
    if not name or any(c in name for c in "/@ *[]") or ".." in name:
        raise ValueError(f"no_proxy entry {entry!r} is neither a host name, an IP address "
                         "nor a CIDR")
    return text


def split_host_port(text: str) -> tuple[str, str | None]:
    """`host`, `host:port`, `[v6]`, `[v6]:port`, a bare IPv6 address or CIDR → (host, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, (rest[1:] if rest.startswith(":") else None)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, port
    return text, None


_AS_WRITTEN = PlainSerializer(str, return_type=str)
_URL_SCHEMA = {"type": "string", "pattern": "^http://",
               "description": "http://[user:password@]host:port"}
Proxy = Annotated[ProxyUrl, PlainValidator(_proxy), _AS_WRITTEN, WithJsonSchema(_URL_SCHEMA)]
HookProxy = Annotated[ProxyUrl | Literal["none"], PlainValidator(_hook_proxy), _AS_WRITTEN,
                      WithJsonSchema({"anyOf": [_URL_SCHEMA, {"const": DIRECT}]})]
NoProxyEntry = Annotated[str, AfterValidator(no_proxy_entry)]
