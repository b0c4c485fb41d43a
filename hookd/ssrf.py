"""SSRF guard: refuse destinations that resolve to internal addresses, on every attempt."""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Sequence

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from hookd.errors import BlockedDestination

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressPolicy:
    """Loopback, private, link-local, multicast, reserved, unspecified and other not globally
    reachable addresses (such as 100.64/10, where some clouds keep their metadata service)
    are forbidden unless inside an allowed network."""

    def __init__(self, allow_networks: Sequence[str] = ()) -> None:
        self.allowed: tuple[IPNetwork, ...] = ()
        self._seen: dict[str, bool] = {}  # per address, bounded: checked on every attempt
        self.update(allow_networks)

    def update(self, allow_networks: Sequence[str]) -> None:
        """New allowed networks (a reload): decisions made under the old ones are dropped."""
        self.allowed = tuple(ipaddress.ip_network(n, strict=False) for n in allow_networks)
        self._seen = {}

    def permits(self, address: str) -> bool:
        known = self._seen.get(address)
        if known is None:
            if len(self._seen) >= 4096:
                self._seen.clear()
            known = self._seen[address] = self._decide(address)
        return known

    def _decide(self, address: str) -> bool:
        try:
            ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.allowed):
            return True
        return not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
                    or ip.is_unspecified or ip.is_reserved or not ip.is_global)

    def check(self, host: str, address: str) -> None:
        if not self.permits(address):
            raise BlockedDestination(f"destination {host} resolves to {address}, which is not "
                                     "allowed (delivery.allow_networks)")


class GuardedResolver(AbstractResolver):
    """Wraps the real resolver; only addresses the policy permits reach the connector."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        allowed = [r for r in results if self.policy.permits(r["host"])]
        if not allowed:
            addresses = ", ".join(sorted({r["host"] for r in results}))
            raise BlockedDestination(f"destination {host} resolves to {addresses}, which is "
                                     "not allowed (delivery.allow_networks)")
        return allowed

    async def close(self) -> None:
        await self.inner.close()


@functools.lru_cache(maxsize=4096)
def literal_ip(host: str) -> str | None:
    """The host if it is an IP literal (aiohttp skips the resolver for those)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None

