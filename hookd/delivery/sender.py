"""Sending rendered requests: the SSRF guard, the endpoints (hookd.delivery.endpoint: circuit,
slots, stall watch and connections each), TLS defaults; and the seam dispatching uses."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

import orjson

from hookd import USER_AGENT
from hookd.config import DeliveryConfig
from hookd.delivery.circuit import CircuitPolicy
from hookd.delivery.client import ConnectionFactory, Connector
from hookd.delivery.connection import Connection
from hookd.delivery.endpoint import Endpoint
from hookd.delivery.endpoints import Endpoints
from hookd.delivery.retries import ErrorKind, Outcome, failure
from hookd.delivery.sending import Sending
from hookd.delivery.ssrf import AddressPolicy, GuardedResolver, Lookup, system_lookup
from hookd.requests.auth import basic_authorization
from hookd.requests.proxy import Route
from hookd.requests.render import Request
from hookd.requests.signing import Signer
from hookd.requests.target import Target, target_of, tls_context


class Cancellable(Protocol):
    def cancel(self) -> Any: ...


Done = Callable[[Outcome], None]


class Sender(Protocol):
    """The seam between dispatching and HTTP: tests may fake it, the daemon uses HttpSender."""

    def attempt(self, request: Request, signer: Signer | None, timeout: float,
                tls: ssl.SSLContext | None = None,
                extra_headers: Mapping[str, str] | None = None,
                proxy: Route | None = None) -> Awaitable[Outcome]: ...

    def begin(self, request: Request, signer: Signer | None, timeout: float,
              tls: ssl.SSLContext | None, extra_headers: Mapping[str, str] | None,
              proxy: Route | None, done: Done) -> Cancellable:
        """`attempt` without a coroutine: `done(outcome)` once it has ended (possibly at
        once); cancelling the returned handle ends it without telling `done`."""
        ...

    def unavailable(self, endpoint: str, hook: str | None = None) -> Outcome | None:
        """PARK when the endpoint's (host) circuit or the hook's own is open, or the
        endpoint has stalled: checked before a request is even rendered (hooks whose
        endpoint is known at load: CompiledHook.endpoint); None otherwise."""
        ...


async def _now(outcome: Outcome) -> Outcome:
    return outcome


class AttemptsAsTasks:
    """`begin` for a sender that only has the coroutine `attempt` (a test's fake): a task
    per attempt. An attempt that raises ends as `internal`."""

    def attempt(self, request: Request, signer: Signer | None, timeout: float,
                tls: ssl.SSLContext | None = None,
                extra_headers: Mapping[str, str] | None = None) -> Awaitable[Outcome]:
        raise NotImplementedError

    def begin(self, request: Request, signer: Signer | None, timeout: float,
              tls: ssl.SSLContext | None, extra_headers: Mapping[str, str] | None,
              proxy: Route | None, done: Done) -> Cancellable:
        async def attempt() -> Outcome:
            return await self.attempt(request, signer, timeout, tls, extra_headers)

        def ended(task: asyncio.Task[Outcome]) -> None:
            if task.cancelled():
                return
            exc = task.exception()
            done(task.result() if exc is None else
                 failure(ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}"))
        task = asyncio.get_running_loop().create_task(attempt())
        task.add_done_callback(ended)
        return task


class _Nothing:
    def cancel(self) -> None:
        """Ended already."""


_NOTHING = _Nothing()


class HttpSender:
    """Sends rendered requests through their endpoints, for the whole daemon."""

    def __init__(self, config: DeliveryConfig, lookup: Lookup = system_lookup,
                 protocol: ConnectionFactory = Connection) -> None:
        self.config = config
        cb = config.circuit_breaker
        self.policy = AddressPolicy(config.allow_networks)
        self.resolver = GuardedResolver(self.policy, lookup)
        self.endpoints = Endpoints(
            config.per_endpoint_in_flight, config.max_in_flight, config.stall_after,
            policy=CircuitPolicy(cb.failures, cb.cooldown, cb.max_cooldown),
            connector=Connector(self.resolver.resolve, keepalive=30.0, protocol=protocol),
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

    def _endpoint(self, target: Target, proxy: Route | None) -> Endpoint:
        """The endpoint a request to `target` goes through: the proxy's route to it when
        the hook has one (unless no_proxy names the destination), else straight."""
        if proxy is not None:
            via = proxy.via(target)
            if via is not None:
                return self.endpoints.via(*via)
        return self.endpoints.get(target.endpoint)

    def begin(self, request: Request, signer: Signer | None, timeout: float,
              tls: ssl.SSLContext | None, extra_headers: Mapping[str, str] | None,
              proxy: Route | None, done: Done) -> Cancellable:
        """One attempt through the request's endpoint without a coroutine (see
        hookd.delivery.sending). `proxy`: the hook's route."""
        head = request.head
        target = head.target if head is not None else None  # a fixed URL's, from the load
        if target is None:
            try:
                target = target_of(request.url)
            except ValueError as exc:  # e.g. host 127.1: it can never work, not retried
                done(failure(ErrorKind.RENDER, f"invalid URL: {exc}"[:300]))
                return _NOTHING
        # an endpoint in use, straight: found without a Python call (`_endpoint`'s common case)
        endpoint = self.endpoints.find(target.endpoint) if proxy is None else None
        if endpoint is None:
            endpoint = self._endpoint(target, proxy)
        if target.scheme != "https":  # (`_tls`, inline)
            tls = None
        elif tls is None:
            tls = self._default_tls
        return Sending(endpoint, target, request, signer, timeout, tls, extra_headers, done)

    def attempt(self, request: Request, signer: Signer | None, timeout: float,
                tls: ssl.SSLContext | None = None,
                extra_headers: Mapping[str, str] | None = None,
                proxy: Route | None = None) -> Awaitable[Outcome]:
        """`begin`, awaitable (see Endpoint.attempt)."""
        head = request.head
        target = head.target if head is not None else None
        if target is None:
            try:
                target = target_of(request.url)
            except ValueError as exc:  # e.g. host 127.1: it can never work, not retried
                return _now(failure(ErrorKind.RENDER, f"invalid URL: {exc}"[:300]))
        return self._endpoint(target, proxy).attempt(
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
