"""One HTTP attempt: a shared keep-alive pool, limits per endpoint, the SSRF guard."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson
from yarl import URL

from hookd.auth import basic_authorization
from hookd.breaker import Breakers
from hookd.config import DeliveryConfig, TlsConfig
from hookd.errors import BlockedDestination
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
from hookd.ssrf import AddressPolicy, GuardedResolver, literal_ip


class Sender(Protocol):
    """The seam between dispatching and HTTP: tests may fake it, the daemon uses HttpSender."""

    async def attempt(self, request: Request, signer: Signer | None, timeout: float,
                      tls: TlsConfig | None = None,
                      extra_headers: Mapping[str, str] | None = None) -> Outcome: ...


def endpoint_of(url: URL) -> str:
    return f"{url.scheme}://{url.host}:{url.port}"


class Stalled(Exception):
    """The endpoint has a full queue and has not answered for a while."""


@dataclass(eq=False)
class _Endpoint:
    sem: asyncio.Semaphore
    users: int = 0  # waiting or in flight
    progress: float = field(default_factory=time.monotonic)  # last answer (or first use)


class EndpointLimits:
    """Per-endpoint in-flight caps taken before the global one, so a slow endpoint queues
    behind its own cap and never holds the slots the healthy ones need. An endpoint with
    every slot taken that has not answered for `stall_after` seconds is *stalled*: requests
    waiting for it, and new ones, are parked instead of queued (see HttpSender.attempt)."""

    def __init__(self, per_endpoint: int, total: int, stall_after: float = 1.0) -> None:
        self.per_endpoint = per_endpoint
        self.total = asyncio.Semaphore(total)
        self.stall_after = stall_after
        self._endpoints: dict[str, _Endpoint] = {}
        self.in_flight = 0

    def stalled(self, endpoint: str) -> bool:
        state = self._endpoints.get(endpoint)
        return (state is not None and state.users >= self.per_endpoint
                and time.monotonic() - state.progress > self.stall_after)

    async def acquire(self, endpoint: str) -> _Endpoint:
        """Take the endpoint's slot, then a global one; give both back with release().
        Raises Stalled when the endpoint stalls while this request waits for its slot."""
        state = self._endpoints.get(endpoint)
        if state is None:
            state = self._endpoints[endpoint] = _Endpoint(asyncio.Semaphore(self.per_endpoint))
        state.users += 1
        try:
            while True:  # wait for the endpoint's slot, but not behind a black hole
                if not state.sem.locked():
                    await state.sem.acquire()
                    break
                try:
                    async with asyncio.timeout(self.stall_after):
                        await state.sem.acquire()
                    break
                except TimeoutError:
                    if self.stalled(endpoint):
                        raise Stalled(endpoint) from None
            try:
                await self.total.acquire()
            except BaseException:
                state.sem.release()
                raise
        except BaseException:
            self._leave(endpoint, state)
            raise
        self.in_flight += 1
        return state

    def release(self, endpoint: str, state: _Endpoint, answered: bool = True) -> None:
        self.in_flight -= 1
        self.total.release()
        state.sem.release()
        if answered:
            state.progress = time.monotonic()
        self._leave(endpoint, state)

    def _leave(self, endpoint: str, state: _Endpoint) -> None:
        state.users -= 1
        if state.users == 0:
            del self._endpoints[endpoint]  # idle endpoints cost nothing

    @asynccontextmanager
    async def slot(self, endpoint: str) -> AsyncIterator[None]:
        state = await self.acquire(endpoint)
        try:
            yield
        finally:
            self.release(endpoint, state)


def _ssl_context(tls: TlsConfig | None) -> ssl.SSLContext | bool:
    if tls is None:
        return True
    if not tls.verify:
        return False
    ctx = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    return ctx


class HttpSender:
    """Sends rendered requests with one aiohttp session for the whole daemon."""

    def __init__(self, config: DeliveryConfig, breakers: Breakers | None = None) -> None:
        self.config = config
        cb = config.circuit_breaker
        self.breakers = breakers or Breakers(cb.failures, cb.cooldown, cb.max_cooldown)
        self.policy = AddressPolicy(config.allow_networks)
        self.limits = EndpointLimits(config.per_endpoint_in_flight, config.max_in_flight,
                                     config.stall_after)
        self._session: aiohttp.ClientSession | None = None
        self._retired: list[aiohttp.ClientSession] = []  # replaced on reload, closing soon
        self._ssl: dict[TlsConfig, ssl.SSLContext | bool] = {}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=0,  # EndpointLimits is the limit
            resolver=GuardedResolver(self.policy), ttl_dns_cache=10,
            keepalive_timeout=30)
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("Accept-Encoding",))

    async def reconfigure(self, config: DeliveryConfig) -> list[str]:
        """Apply a reloaded `delivery` section; returns the settings that need a restart.

        A changed SSRF guard takes effect at once: decisions and DNS answers are dropped,
        and a fresh connection pool replaces the old one (whose in-flight requests finish;
        its kept-alive connections, checked under the old rules, are not reused)."""
        old, self.config = self.config, config
        self.limits.stall_after = config.stall_after
        if config.allow_networks != old.allow_networks and self._session is not None:
            self.policy.update(config.allow_networks)
            self._retired.append(self._session)
            await self.start()
            asyncio.get_running_loop().call_later(60.0, self._close_retired)
        return [name for name in ("max_in_flight", "per_endpoint_in_flight", "circuit_breaker")
                if getattr(config, name) != getattr(old, name)]

    def _close_retired(self) -> None:
        retired, self._retired = self._retired, []
        for session in retired:
            asyncio.get_running_loop().create_task(session.close())

    async def close(self) -> None:
        retired, self._retired = self._retired, []
        for session in retired:
            await session.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _tls(self, tls: TlsConfig | None) -> ssl.SSLContext | bool:
        if tls is None:
            return True
        if tls not in self._ssl:
            self._ssl[tls] = _ssl_context(tls)
        return self._ssl[tls]

    async def attempt(self, request: Request, signer: Signer | None, timeout: float,
                      tls: TlsConfig | None = None,
                      extra_headers: Mapping[str, str] | None = None) -> Outcome:
        """One attempt, unless the endpoint's circuit is open (then PARK, nothing sent)."""
        assert self._session is not None, "HttpSender.start() first"
        url = URL(request.url, encoded=True)
        endpoint = endpoint_of(url)
        wait = self.breakers.open_for(endpoint)
        if wait is None:
            try:
                if self.limits.stalled(endpoint):
                    raise Stalled(endpoint)
                slot = await self.limits.acquire(endpoint)
            except Stalled:  # a full queue and no answer for a while (a black hole): park
                return Outcome(Verdict.PARK, ErrorKind.TIMEOUT, None,
                               f"{endpoint} is not answering", self.breakers.cooldown)
            answered = False
            try:
                wait = self.breakers.blocked_for(endpoint)  # it may have opened meanwhile
                if wait is None:
                    outcome = await self._attempt(url, request, signer, timeout, tls,
                                                  extra_headers)
                    answered = outcome.status is not None
                    self.breakers.record(endpoint, outcome)
                    return outcome
            finally:
                self.limits.release(endpoint, slot, answered)
        return Outcome(Verdict.PARK, ErrorKind.CONNECT, None, f"circuit open for {endpoint}",
                       wait)

    async def _attempt(self, url: URL, request: Request, signer: Signer | None,
                       timeout: float, tls: TlsConfig | None,
                       extra_headers: Mapping[str, str] | None) -> Outcome:
        try:
            ip = literal_ip(url.host or "")
            if ip is not None:
                self.policy.check(url.host or "", ip)
            return await self._send(url, request, signer, timeout, tls, extra_headers)
        except BlockedDestination as exc:
            return failure(ErrorKind.BLOCKED, str(exc))
        except aiohttp.InvalidURL as exc:  # e.g. host 127.1: it can never work, not retried
            return failure(ErrorKind.RENDER, f"invalid URL: {exc}"[:300])
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return failure(ErrorKind.TIMEOUT, f"no complete answer within {timeout:g}s")
        except (aiohttp.ClientError, OSError) as exc:
            return failure(ErrorKind.CONNECT, f"{type(exc).__name__}: {exc}"[:300])
        except ValueError as exc:  # a header aiohttp refuses to write (CR/LF): nothing sent
            return failure(ErrorKind.RENDER, f"invalid request: {exc}"[:300])
        except ssl.SSLError as exc:  # pragma: no cover - OSError covers it; kept explicit
            return failure(ErrorKind.CONNECT, f"TLS: {exc}")

    async def _send(self, url: URL, request: Request, signer: Signer | None, timeout: float,
                    tls: TlsConfig | None, extra: Mapping[str, str] | None) -> Outcome:
        assert self._session is not None
        headers = request.signed_headers(signer, int(time.time()))
        if extra:
            headers.update(extra)
        async with self._session.request(
                request.method, url, data=request.body if request.body else None,
                headers=headers, allow_redirects=False, ssl=self._tls(tls),
                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            head = await self._read_capped(resp)
            message = f"HTTP {resp.status}: {head[:200].decode('utf-8', 'replace')}"
            return classify_status(resp.status, parse_retry_after(resp.headers.get("Retry-After")),
                                   message)

    async def post_form(self, url: str, form: dict[str, str], basic: tuple[str, str],
                        timeout: float) -> tuple[int, Any]:
        """For OAuth2 token endpoints: the same pool and SSRF guard as deliveries."""
        assert self._session is not None, "HttpSender.start() first"
        target = URL(url)
        ip = literal_ip(target.host or "")
        if ip is not None:
            self.policy.check(target.host or "", ip)
        async with self._session.post(
                target, data=form, headers={"Authorization": basic_authorization(*basic)},
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            raw = await self._read_capped(resp)
            try:
                return resp.status, orjson.loads(raw)
            except orjson.JSONDecodeError:
                return resp.status, None

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        """Read at most max_response_bytes; a longer body closes the connection instead."""
        limit = self.config.max_response_bytes
        data = bytearray()
        while len(data) < limit:
            chunk = await resp.content.read(limit - len(data))
            if not chunk:
                return bytes(data)
            data += chunk
        if not resp.content.at_eof():
            resp.close()  # the rest is not wanted; the connection cannot be reused
        return bytes(data)
