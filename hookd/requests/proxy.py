"""Which proxy a request goes through: a hook's route (its proxy, or `delivery.proxy`, and
`delivery.no_proxy`), compiled once at load; per destination, the answer is remembered.

`no_proxy` is matched here by hand, as curl (7.86+) and requests match it: the standard
library's `urllib.request.proxy_bypass_environment` re-parses the list on every call,
knows no CIDRs and reads the environment, which hookd deliberately does not (a daemon
picking up a stray HTTPS_PROXY from a login shell would surprise its operator)."""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass, field
from typing import Literal

from hookd.config.proxies import DIRECT, ProxyUrl, split_host_port
from hookd.requests.target import Target

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Proxy:
    """One proxy, ready to use: where it listens, what `check` and logs show of it (never
    its credentials) and the `Proxy-Authorization` value its URL's credentials make."""

    host: str
    port: int
    shown: str  # http://***@host:port when it has credentials
    authorization: str | None = field(default=None, repr=False)

    @classmethod
    def of(cls, url: ProxyUrl) -> Proxy:
        token = proxy_token(url)
        return cls(url.host, url.port, url.shown, f"Basic {token}" if token else None)

    def absolute(self, target: Target, headers: dict[str, str]) -> Target:
        """A plain-HTTP request as a proxy wants it: the absolute URL as its target
        (RFC 9112 §3.2.2) and `Proxy-Authorization` added to `headers`."""
        if self.authorization is not None:
            headers["Proxy-Authorization"] = self.authorization
        return Target(target.scheme, target.host, target.port, target.host_header,
                      f"{target.scheme}://{target.host_header}{target.path}", target.endpoint)


def proxy_token(url: ProxyUrl) -> str | None:
    """base64(user:password) of the URL's credentials (as secret as the password)."""
    if url.username is None:
        return None
    return base64.b64encode(f"{url.username}:{url.password or ''}".encode()).decode()


def proxy_secrets(url: ProxyUrl | Literal["none"] | None) -> set[str]:
    """Values of a proxy URL that must never be logged."""
    if not isinstance(url, ProxyUrl) or url.username is None:
        return set()
    token = proxy_token(url)
    return {s for s in (url.password, token) if s}


class NoProxy:
    """`delivery.no_proxy`, compiled: does a destination bypass the proxy?"""

    def __init__(self, entries: list[str]) -> None:
        self.everything = "*" in entries
        self.names: dict[str, int | None] = {}  # a domain -> the one port it holds for
        self.networks: list[tuple[IPNetwork, int | None]] = []
        for entry in entries:  # each checked by the config model (no_proxy_entry)
            host, port_text = split_host_port(entry)
            port = int(port_text) if port_text else None
            try:
                self.networks.append((ipaddress.ip_network(host, strict=False), port))
            except ValueError:
                self.names[host.strip(".")] = port

    def bypass(self, host: str, port: int) -> bool:
        if self.everything:
            return True
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            name = host.lower().rstrip(".")
            while True:  # the host, then each domain above it
                if name in self.names and self.names[name] in (None, port):
                    return True
                if "." not in name:
                    return False
                name = name.split(".", 1)[1]
        return any(ip in net and want in (None, port) for net, want in self.networks)


class Route:
    """A hook's way out: `proxy` unless its destination is in `no_proxy`."""

    __slots__ = ("_seen", "no_proxy", "proxy")

    def __init__(self, proxy: Proxy, no_proxy: NoProxy) -> None:
        self.proxy, self.no_proxy = proxy, no_proxy
        self._seen: dict[str, tuple[str, Proxy] | None] = {}  # endpoint -> the answer

    def via(self, target: Target) -> tuple[str, Proxy] | None:
        """None: direct. Else the key of the endpoint that pools this destination's
        connections through this proxy (never shared with direct ones), and the proxy."""
        known = self._seen.get(target.endpoint, False)
        if known is False:
            if len(self._seen) >= 4096:
                self._seen.clear()
            known = self._seen[target.endpoint] = (
                None if self.no_proxy.bypass(target.host, target.port)
                else (f"{target.endpoint} via {self.proxy.shown}", self.proxy))
        return known  # type: ignore[return-value]


def route_of(own: ProxyUrl | Literal["none"] | None, default: ProxyUrl | None,
             no_proxy: NoProxy) -> Route | None:
    """A hook's route: its own proxy, else `delivery.proxy`; None when it goes direct."""
    url = default if own is None else (None if own == DIRECT else own)
    return None if not isinstance(url, ProxyUrl) else Route(Proxy.of(url), no_proxy)
