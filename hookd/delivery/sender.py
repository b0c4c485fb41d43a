"""Sending rendered requests: the SSRF guard, the endpoints (hookd.delivery.endpoint: circuit,
slots, stall watch and connections each), TLS defaults; and the seam dispatching uses."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

import orjson

from hookd import USER_AGENT
from hookd.config import DeliveryConfig
from hookd.delivery.circuit import CircuitPolicy
from hookd.delivery.client import Connector
from hookd.delivery.endpoints import Endpoints
from hookd.delivery.retries import ErrorKind, Outcome, failure
from hookd.delivery.ssrf import AddressPolicy, GuardedResolver, Lookup, system_lookup
from hookd.requests.auth import basic_authorization
from hookd.requests.proxy import Route
from hookd.requests.render import Request
from hookd.requests.signing import Signer
from hookd.requests.target import target_of, tls_context


class Sender(Protocol):
    """The seam between dispatching and HTTP: tests may fake it, the daemon uses HttpSender."""

    def attempt(self, request: Request, signer: Signer | None, timeout: float,
                tls: ssl.SSLContext | None = None,
                extra_headers: Mapping[str, str] | None = None,
                proxy: Route | None = None) -> Awaitable[Outcome]: ...

    def unavailable(self, endpoint: str, hook: str | None = None) -> Outcome | None:
        """PARK when the endpoint's (host) circuit or the hook's own is open, or the
        endpoint has stalled: checked before a request is even rendered (hooks whose
        endpoint is known at load: CompiledHook.endpoint); None otherwise."""
        ...


async def _now(outcome: Outcome) -> Outcome:
    return outcome


class HttpSender:
    """Sends rendered requests through their endpoints, for the whole daemon."""

    def __init__(self, config: DeliveryConfig, lookup: Lookup = system_lookup) -> None:
        self.config = config
        cb = config.circuit_breaker
        self.policy = AddressPolicy(config.allow_networks)
        self.resolver = GuardedResolver(self.policy, lookup)
        self.endpoints = Endpoints(
            config.per_endpoint_in_flight, config.max_in_flight, config.stall_after,
            policy=CircuitPolicy(cb.failures, cb.cooldown, cb.max_cooldown),
            connector=Connector(self.resolver.resolve, keepalive=30.0),
            max_response_bytes=config.max_response_bytes)
        self._default_tls = tls_context()  # for hooks without a `tls` section

    async def start(self) -> None:
        """Nothing to open ahead: connections are made per endpoint when first needed."""

    async def reconfigure(self, config: DeliveryConfig) -> list[str]:
        """Apply a reloaded `delivery` section; returns the settings that need a restart.

        A changed SSRF guard takes effect at once: decisions and DNS answers are dropped,
        and kept-alive connections (checked under the old rules) are closed; requests in
        flight finish, and their connections are not reused."""
        old, self.config = self.config, config
        self.endpoints.stall_after = config.stall_after
        self.endpoints.max_response_bytes = config.max_response_bytes
        if config.allow_networks != old.allow_networks:
            self.policy.update(config.allow_networks)
            self.resolver.forget()
            self.endpoints.reset()
        return [name for name in ("max_in_flight", "per_endpoint_in_flight", "circuit_breaker")
                if getattr(config, name) != getattr(old, name)]

    async def close(self) -> None:
        self.endpoints.close()

    def _tls(self, scheme: str, tls: ssl.SSLContext | None) -> ssl.SSLContext | None:
        if scheme != "https":
            return None
        return tls or self._default_tls

    def unavailable(self, endpoint: str, hook: str | None = None) -> Outcome | None:
        known = self.endpoints.find(endpoint)
        return None if known is None else known.unavailable(hook)

    def attempt(self, request: Request, signer: Signer | None, timeout: float,
                tls: ssl.SSLContext | None = None,
                extra_headers: Mapping[str, str] | None = None,
                proxy: Route | None = None) -> Awaitable[Outcome]:
        """One attempt through the request's endpoint (see Endpoint.attempt): its
        coroutine, handed back rather than awaited here, so that each resume of the
        delivery runs through one frame less. `proxy`: the hook's route (its endpoint
        through the proxy, unless no_proxy names the destination)."""
        try:
            target = target_of(request.url)
        except ValueError as exc:  # e.g. host 127.1: it can never work, not retried
            return _now(failure(ErrorKind.RENDER, f"invalid URL: {exc}"[:300]))
        if proxy is not None:
            via = proxy.via(target)
            if via is not None:
                return self.endpoints.via(*via).attempt(
                    target, request, signer, timeout, self._tls(target.scheme, tls),
                    extra_headers)
        return self.endpoints.get(target.endpoint).attempt(
            target, request, signer, timeout, self._tls(target.scheme, tls), extra_headers)

    async def post_form(self, url: str, form: dict[str, str], basic: tuple[str, str],
                        timeout: float, proxy: Route | None = None) -> tuple[int, Any]:
        """For OAuth2 token endpoints: the same connections, SSRF guard and proxy route
        as the hook's deliveries (not their slots or circuit: a token is asked for once,
        before a delivery)."""
        target = target_of(url)
        headers = {"Authorization": basic_authorization(*basic), "Accept": "application/json",
                   "Content-Type": "application/x-www-form-urlencoded",
                   "User-Agent": USER_AGENT}
        via = proxy.via(target) if proxy is not None else None
        endpoint = (self.endpoints.get(target.endpoint) if via is None
                    else self.endpoints.via(*via))
        try:
            resp = await endpoint.connections.request(
                "POST", target, headers, urlencode(form).encode(), timeout,
                self.config.max_response_bytes, self._tls(target.scheme, None))
        finally:
            self.endpoints.forget(endpoint)
        try:
            return resp.status, orjson.loads(resp.body)
        except orjson.JSONDecodeError:
            return resp.status, None
