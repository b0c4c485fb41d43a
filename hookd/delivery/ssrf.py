"""SSRF guard: refuse destinations that resolve to internal addresses, on every attempt."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Sequence

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


Lookup = Callable[[str, int], Awaitable[list[str]]]


async def system_lookup(host: str, port: int) -> list[str]:
    """The addresses getaddrinfo gives for host, in its order, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedResolver:
    """Where a host may be connected to: its addresses (cached for `ttl` seconds) that the
    policy permits. An IP literal is checked as it is; a host with no permitted address
    raises BlockedDestination."""

    def __init__(self, policy: AddressPolicy, lookup: Lookup = system_lookup,
                 ttl: float = 10.0) -> None:
        self.policy = policy
        self.lookup = lookup
        self.ttl = ttl
        self._cache: dict[tuple[str, int], tuple[float, list[str]]] = {}

    async def resolve(self, host: str, port: int) -> list[str]:
        ip = literal_ip(host)
        if ip is not None:
            self.policy.check(host, ip)
            return [ip]
        now = time.monotonic()
        cached = self._cache.get((host, port))
        if cached is not None and cached[0] > now:
            addresses = cached[1]
        else:
            addresses = await self.lookup(host, port)
            if len(self._cache) >= 4096:
                self._cache.clear()
            self._cache[(host, port)] = (now + self.ttl, addresses)
        allowed = [a for a in addresses if self.policy.permits(a)]
        if not allowed:
            shown = ", ".join(sorted(set(addresses))) or "no address"
            raise BlockedDestination(f"destination {host} resolves to {shown}, which is "
                                     "not allowed (delivery.allow_networks)")
        return allowed

    def forget(self) -> None:
        """Drop cached answers (the rules changed)."""
        self._cache.clear()


@functools.lru_cache(maxsize=4096)
def literal_ip(host: str) -> str | None:
    """The host if it is an IP literal (checked as it is, never resolved)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None

