"""hookd.delivery.sending and the endpoint's bookkeeping around one attempt (take, ended),
with the connections faked: each request is held until the test answers it. The common
case (both circuits closed, both slots free) is one step each way: these tables pin it
down against the full way it stands in for."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from hookd.delivery.circuit import CircuitPolicy
from hookd.delivery.endpoint import Endpoint
from hookd.delivery.endpoints import Endpoints
from hookd.delivery.retries import ErrorKind, Outcome, Verdict, failure
from hookd.delivery.sending import ENDED, PROBE, Sending
from hookd.delivery.wire import Response
from hookd.requests.render import Request
from hookd.requests.target import target_of

A, B, C = "http://a:80", "http://b:80", "http://c:80"
POLICY = CircuitPolicy(failures=2, cooldown=30.0)
REFUSED = failure(ErrorKind.CONNECT, "refused")


class Handle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Wire:
    """Every endpoint's connections: what was sent, and the way to answer it."""

    replies: list[Callable[[Response | None, BaseException | None], None]] = field(
        default_factory=list)
    proxy: None = None

    def __bool__(self) -> bool:
        return False  # nothing kept alive: an endpoint with nothing in flight is dropped

    def send(self, data: bytes, target: object, timeout: float, cap: int, tls: object,
             reply: Callable[[Response | None, BaseException | None], None]) -> Handle:
        self.replies.append(reply)
        return Handle()

    def begin(self, method: str, target: object, headers: object, body: bytes,
              timeout: float, cap: int, tls: object,
              reply: Callable[[Response | None, BaseException | None], None]) -> Handle:
        return self.send(body, target, timeout, cap, tls, reply)

    def close(self) -> None:
        """Nothing kept."""

    def answer(self, n: int, status: int | None) -> None:
        """The n-th request sent gets `status` (None: the connection is refused)."""
        if status is None:
            self.replies[n](None, ConnectionRefusedError("refused"))
        else:
            self.replies[n](Response(status, None, b"", False), None)


@dataclass
class Bench:
    per_endpoint: int = 2
    total: int = 10
    wire: Wire = field(default_factory=Wire)
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # by webhook id, as told

    def __post_init__(self) -> None:
        self.endpoints = Endpoints(self.per_endpoint, self.total, stall_after=60.0,
                                   policy=POLICY)
        self.made = 0

    def endpoint(self, name: str) -> Endpoint:
        endpoint = self.endpoints.get(name)
        endpoint.connections = self.wire  # type: ignore[assignment]
        return endpoint

    def attempt(self, name: str = A, hook: str = "h") -> Sending:
        self.made += 1
        url, msg_id = f"{name}/hook", f"msg_{self.made}"
        request = Request(hook, "POST", url, (("content-type", "application/json"),), b"{}",
                          msg_id)
        return Sending(self.endpoint(name), target_of(url), request, None, 5.0, None, None,
                       lambda outcome: self.outcomes.__setitem__(msg_id, outcome))

    def outcome(self, sending: Sending) -> Outcome | None:
        return self.outcomes.get(sending.request.webhook_id)


def open_host(endpoint: Endpoint, half: bool = False) -> None:
    for _ in range(POLICY.failures):
        endpoint.circuit.record(REFUSED, time.monotonic())
    if half:
        endpoint.circuit.open_until = time.monotonic() - 1.0  # its cooldown is over


def open_hook(endpoint: Endpoint, hook: str) -> None:
    for _ in range(POLICY.failures):
        endpoint.record(hook, Outcome(Verdict.RETRY, ErrorKind.HTTP_STATUS, 503))


@pytest.mark.parametrize("scope", ["host", "hook"])
async def test_a_cancelled_probe_lets_the_next_attempt_probe(scope: str) -> None:
    """A half-open circuit's probe cancelled on the wire (a revoked partition, the
    shutdown) said nothing: the next attempt probes, rather than every one being parked
    for as long as the circuit waits for a probe that will never end."""
    bench = Bench()
    endpoint = bench.endpoint(A)
    if scope == "host":
        open_host(endpoint, half=True)
    else:
        open_hook(endpoint, "h")
        endpoint.hooks["h"].open_until = time.monotonic() - 1.0
    probe = bench.attempt()
    assert probe.stage == PROBE
    second = bench.attempt()
    assert second.stage == ENDED  # one probe at a time
    probe.cancel()
    assert bench.endpoints.in_flight == 0
    third = bench.attempt()
    assert third.stage == PROBE  # the next probe
    bench.wire.answer(1, 200)
    assert endpoint.circuit.closed and endpoint.hooks == {}
