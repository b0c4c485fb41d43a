"""One HTTP attempt: limits per endpoint, circuit breakers, the SSRF guard, the pool."""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

import orjson

from hookd import USER_AGENT
from hookd.auth import basic_authorization
from hookd.breaker import Breakers
from hookd.config import DeliveryConfig
from hookd.errors import BlockedDestination
from hookd.http1 import Pool, ProtocolError
from hookd.limits import EndpointLimits, Stalled
from hookd.render import Request
from hookd.retries import (
    ErrorKind,
    Outcome,
    Verdict,
    classify_status,
    failure,
    parse_retry_after,
)
from hookd.signing import Signer
from hookd.ssrf import AddressPolicy, GuardedResolver, Lookup, system_lookup
from hookd.wire import Response, target_of, tls_context


class Sender(Protocol):
    """The seam between dispatching and HTTP: tests may fake it, the daemon uses HttpSender."""

    async def attempt(self, request: Request, signer: Signer | None, timeout: float,
                      tls: ssl.SSLContext | None = None,
                      extra_headers: Mapping[str, str] | None = None) -> Outcome: ...

    def unavailable(self, endpoint: str) -> Outcome | None:
        """PARK when the endpoint's circuit is open or it has stalled: checked before a
        request is even rendered (hooks with a fixed URL); None otherwise."""
        ...


def _circuit_open(endpoint: str, wait: float) -> Outcome:
    return Outcome(Verdict.PARK, ErrorKind.CONNECT, None, f"circuit open for {endpoint}", wait)


def _stalled(endpoint: str, cooldown: float) -> Outcome:
    """All of its slots busy and no answer for `stall_after` (a black hole)."""
    return Outcome(Verdict.PARK, ErrorKind.TIMEOUT, None, f"{endpoint} is not answering",
                   cooldown)


def _not_answered(exc: Exception, timeout: float) -> Outcome:
    """What a request that got no answer ends as (nothing sent, or nothing back)."""
    if isinstance(exc, BlockedDestination):
        return failure(ErrorKind.BLOCKED, str(exc))
    if isinstance(exc, TimeoutError):  # (an OSError: first)
        return failure(ErrorKind.TIMEOUT, f"no complete answer within {timeout:g}s")
    if isinstance(exc, (ProtocolError, OSError)):  # ssl.SSLError is an OSError
        return failure(ErrorKind.CONNECT, f"{type(exc).__name__}: {exc}"[:300])
    # ValueError: a header that would break the framing, or a bad URL: nothing sent
    return failure(ErrorKind.RENDER, f"invalid request: {exc}"[:300])


def _answered(resp: Response) -> Outcome:
    if 200 <= resp.status < 300:
        return classify_status(resp.status)
    message = f"HTTP {resp.status}: {resp.body[:200].decode('utf-8', 'replace')}"
    return classify_status(resp.status, parse_retry_after(resp.retry_after), message)


class HttpSender:
    """Sends rendered requests over one keep-alive pool (hookd.http1) for the whole daemon."""

    def __init__(self, config: DeliveryConfig, breakers: Breakers | None = None,
                 lookup: Lookup = system_lookup) -> None:
        self.config = config
        cb = config.circuit_breaker
        self.breakers = breakers or Breakers(cb.failures, cb.cooldown, cb.max_cooldown)
        self.policy = AddressPolicy(config.allow_networks)
        self.resolver = GuardedResolver(self.policy, lookup)
        self.limits = EndpointLimits(config.per_endpoint_in_flight, config.max_in_flight,
                                     config.stall_after)
        self._pool: Pool | None = None
        self._default_tls = tls_context()  # for hooks without a `tls` section

    async def start(self) -> None:
        self._pool = Pool(self.resolver.resolve, keepalive=30.0)

    async def reconfigure(self, config: DeliveryConfig) -> list[str]:
        """Apply a reloaded `delivery` section; returns the settings that need a restart.

        A changed SSRF guard takes effect at once: decisions and DNS answers are dropped,
        and kept-alive connections (checked under the old rules) are closed; requests in
        flight finish, and their connections are not reused."""
        old, self.config = self.config, config
        self.limits.stall_after = config.stall_after
        if config.allow_networks != old.allow_networks:
            self.policy.update(config.allow_networks)
            self.resolver.forget()
            if self._pool is not None:
                self._pool.reset()
        return [name for name in ("max_in_flight", "per_endpoint_in_flight", "circuit_breaker")
                if getattr(config, name) != getattr(old, name)]

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _tls(self, scheme: str, tls: ssl.SSLContext | None) -> ssl.SSLContext | None:
        if scheme != "https":
            return None
        return tls or self._default_tls

    def unavailable(self, endpoint: str) -> Outcome | None:
        wait = self.breakers.open_for(endpoint)
        if wait is not None:
            return _circuit_open(endpoint, wait)
        if self.limits.stalled(endpoint):
            return _stalled(endpoint, self.breakers.cooldown)
        return None

    async def attempt(self, request: Request, signer: Signer | None, timeout: float,
                      tls: ssl.SSLContext | None = None,
                      extra_headers: Mapping[str, str] | None = None) -> Outcome:
        """One attempt, unless the endpoint's circuit is open or it has stalled (then PARK,
        nothing sent)."""
        try:
            target = target_of(request.url)
        except ValueError as exc:  # e.g. host 127.1: it can never work, not retried
            return failure(ErrorKind.RENDER, f"invalid URL: {exc}"[:300])
        endpoint = target.endpoint
        closed = self.unavailable(endpoint)
        if closed is not None:
            return closed
        try:
            slot = self.limits.try_acquire(endpoint) or await self.limits.acquire(endpoint)
        except Stalled:  # stalled while this request waited for its slot: park
            return _stalled(endpoint, self.breakers.cooldown)
        answered = False
        try:
            wait = self.breakers.blocked_for(endpoint)  # it may have opened meanwhile
            if wait is not None:
                return _circuit_open(endpoint, wait)
            headers = request.signed_headers(signer, int(time.time()))
            if extra_headers:
                headers.update(extra_headers)
            assert self._pool is not None, "HttpSender.start() first"
            try:  # awaited here, not in a helper coroutine: one frame less per resume
                resp = await self._pool.request(
                    request.method, target, headers, request.body, timeout,
                    self.config.max_response_bytes, self._tls(target.scheme, tls))
            except (BlockedDestination, ProtocolError, OSError, ValueError) as exc:
                outcome = _not_answered(exc, timeout)
            else:
                outcome = _answered(resp)
            answered = outcome.status is not None
            self.breakers.record(endpoint, outcome)
            return outcome
        finally:
            self.limits.release(endpoint, slot, answered)

    async def post_form(self, url: str, form: dict[str, str], basic: tuple[str, str],
                        timeout: float) -> tuple[int, Any]:
        """For OAuth2 token endpoints: the same pool and SSRF guard as deliveries."""
        assert self._pool is not None, "HttpSender.start() first"
        target = target_of(url)
        headers = {"Authorization": basic_authorization(*basic), "Accept": "application/json",
                   "Content-Type": "application/x-www-form-urlencoded",
                   "User-Agent": USER_AGENT}
        resp = await self._pool.request("POST", target, headers, urlencode(form).encode(),
                                        timeout, self.config.max_response_bytes,
                                        self._tls(target.scheme, None))
        try:
            return resp.status, orjson.loads(resp.body)
        except orjson.JSONDecodeError:
            return resp.status, None
