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
from hookd.delivery.sending import ENDED, FOR_ENDPOINT, FOR_GLOBAL, PROBE, SENT, Sending
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


# ------------------------------------------------------------------------ the fast path

@dataclass(frozen=True)
class Case:
    setup: Callable[[Bench], None]
    stage: int  # the new attempt's
    in_flight: int  # after it
    kind: ErrorKind | None = None  # its outcome, when parked at once
    per_endpoint: int = 2
    total: int = 10


def _busy(*counts: tuple[str, int], half_open: bool = False) -> Callable[[Bench], None]:
    """Attempts in flight: `counts` of them per endpoint (after A's circuit is made
    half-open, with `half_open`: the first to A is its probe)."""
    def setup(bench: Bench) -> None:
        if half_open:
            open_host(bench.endpoint(A), half=True)
        for name, n in counts:
            for _ in range(n):
                assert bench.attempt(name).stage in (SENT, PROBE)
    return setup


CASES = {
    "all clear": Case(_busy(), SENT, 1),
    "its endpoint one under its cap": Case(_busy((A, 1)), SENT, 2),
    "its endpoint exactly at its cap": Case(_busy((A, 2)), FOR_ENDPOINT, 2),
    "the global cap one under": Case(_busy((B, 2), (C, 1)), SENT, 4, total=4),
    "the global cap exactly reached": Case(_busy((B, 2), (C, 2)), FOR_GLOBAL, 4, total=4),
    "the host's circuit open": Case(lambda b: open_host(b.endpoint(A)), ENDED, 0,
                                    ErrorKind.CIRCUIT_OPEN),
    "the host's circuit half-open: the probe": Case(_busy(half_open=True), PROBE, 1),
    "the host's circuit half-open, its probe out": Case(_busy((A, 1), half_open=True),
                                                        ENDED, 1, ErrorKind.CIRCUIT_OPEN),
    "the hook's own circuit open": Case(lambda b: open_hook(b.endpoint(A), "h"), ENDED, 0,
                                        ErrorKind.CIRCUIT_OPEN),
    "another hook's circuit open": Case(lambda b: open_hook(b.endpoint(A), "other"), SENT, 1),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_an_attempt_is_sent_queued_or_parked_as_the_full_way_says(name: str) -> None:
    case = CASES[name]
    bench = Bench(case.per_endpoint, case.total)
    case.setup(bench)
    endpoint = bench.endpoint(A)
    sent, free, users = len(bench.wire.replies), endpoint.slots.free, endpoint.users
    sending = bench.attempt(A)
    assert sending.stage == case.stage
    assert bench.endpoints.in_flight == case.in_flight
    assert len(bench.wire.replies) == sent + (sending.stage in (SENT, PROBE))
    outcome = bench.outcome(sending)
    assert (outcome.kind if outcome is not None else None) == case.kind
    if case.stage == ENDED:  # parked: nothing kept, nothing left waiting
        assert outcome is not None and outcome.verdict is Verdict.PARK
        assert (endpoint.slots.free, endpoint.users) == (free, users)
    elif case.stage == FOR_GLOBAL:  # it holds its endpoint's slot meanwhile
        assert endpoint.slots.free == case.per_endpoint - 1
    assert bench.endpoints.total.free == case.total - case.in_flight


async def test_a_freed_slot_goes_to_the_one_waiting_not_to_a_newcomer() -> None:
    bench = Bench(per_endpoint=1)
    first = bench.attempt()
    waiting = bench.attempt()
    assert (first.stage, waiting.stage) == (SENT, FOR_ENDPOINT)
    bench.wire.answer(0, 200)
    assert waiting.stage == SENT  # handed the slot as it was freed
    newcomer = bench.attempt()
    assert newcomer.stage == FOR_ENDPOINT  # no barging in, though `take` was asked
    assert bench.endpoints.in_flight == 1


async def test_one_endpoint_per_name_while_its_attempts_wait_for_the_global_cap() -> None:
    """A new endpoint whose attempts wait for a global slot stays the one endpoint of its
    name: its own cap holds (it used to be dropped while they waited, and made again)."""
    bench = Bench(per_endpoint=1, total=1)
    assert bench.attempt(B).stage == SENT
    first, second = bench.attempt(A), bench.attempt(A)
    assert (first.stage, second.stage) == (FOR_GLOBAL, FOR_ENDPOINT)
    assert first.endpoint is second.endpoint is bench.endpoints.find(A)
    bench.wire.answer(0, 200)
    assert (first.stage, second.stage) == (SENT, FOR_ENDPOINT)
    bench.wire.answer(1, 200)
    assert second.stage == SENT
    bench.wire.answer(2, 200)
    assert bench.endpoints.in_flight == 0 and list(bench.endpoints) == []


# ----------------------------------------------------- a circuit that opens on the way

async def test_a_circuit_opened_after_unavailable_said_go_is_honoured_at_the_take() -> None:
    bench = Bench()
    endpoint = bench.endpoint(A)
    assert endpoint.unavailable("h") is None  # what the way asks before rendering
    open_host(endpoint)  # meanwhile (another delivery's answer, say)
    sending = bench.attempt(A)
    outcome = bench.outcome(sending)
    assert outcome is not None and outcome.kind is ErrorKind.CIRCUIT_OPEN
    assert bench.wire.replies == [] and bench.endpoints.in_flight == 0


@pytest.mark.parametrize("scope", ["host", "hook"])
async def test_a_waiter_handed_a_slot_after_the_circuit_opened_is_parked_unsent(
        scope: str) -> None:
    bench = Bench(per_endpoint=1)
    endpoint = bench.endpoint(A)
    first = bench.attempt()
    waiting = bench.attempt()
    assert (first.stage, waiting.stage) == (SENT, FOR_ENDPOINT)
    if scope == "host":  # one failure recorded already, by another delivery
        endpoint.circuit.record(REFUSED, time.monotonic())
    else:
        endpoint.record("h", Outcome(Verdict.RETRY, ErrorKind.HTTP_STATUS, 503))
    bench.wire.answer(0, None if scope == "host" else 503)  # the second: it opens, and
    outcome = bench.outcome(waiting)  # the freed slot goes to the one waiting
    assert outcome is not None and outcome.kind is ErrorKind.CIRCUIT_OPEN
    assert outcome.message.startswith(f"circuit open for {scope}")
    assert len(bench.wire.replies) == 1 and bench.endpoints.in_flight == 0
    assert endpoint.users == 0 and endpoint.slots.free == 1
    assert not endpoint.circuit.probing  # (not a probe: a half-open circuit's comes later)
    late = bench.attempt()  # a newcomer: parked at once
    assert late.stage == ENDED and len(bench.wire.replies) == 1


# ----------------------------------------------------------------- the end of an attempt

@dataclass(frozen=True)
class End:
    before: Callable[[Endpoint], None]
    status: int | None  # the answer (None: refused)
    host_failures: int
    own: int | None  # the hook's own circuit's failures; None: it has none
    progress: bool  # counted as an answer


def _failures(n: int) -> Callable[[Endpoint], None]:
    def before(endpoint: Endpoint) -> None:
        endpoint.circuit.failures = n
    return before


def _own_failing(endpoint: Endpoint) -> None:
    endpoint.record("h", Outcome(Verdict.RETRY, ErrorKind.HTTP_STATUS, 503))


ENDS = {
    "2xx, all clean: nothing to record": End(lambda e: None, 200, 0, None, True),
    "2xx after no answers: the host is up": End(_failures(1), 200, 0, None, True),
    "2xx while the hook's own failed: closed, and forgotten": End(_own_failing, 200, 0,
                                                                  None, True),
    "503: the hook's own, not the host's": End(_failures(1), 503, 0, 1, True),
    "404: an answer, not the hook's trouble": End(_own_failing, 404, 0, None, True),
    "no answer: the host's": End(lambda e: None, None, 1, None, False),
}


@pytest.mark.parametrize("name", list(ENDS))
async def test_an_ended_attempt_is_recorded_then_gives_both_slots_back(name: str) -> None:
    case = ENDS[name]
    bench = Bench(per_endpoint=2, total=3)
    endpoint = bench.endpoint(A)
    case.before(endpoint)
    other = bench.attempt(B)  # keeps the global count honest
    sending = bench.attempt(A)
    assert sending.stage == SENT and bench.endpoints.in_flight == 2
    since = endpoint.progress
    time.sleep(0.001)
    bench.wire.answer(1, case.status)
    assert sending.stage == ENDED
    assert bench.endpoints.in_flight == 1 and bench.endpoints.total.free == 2
    assert endpoint.slots.free == 2 and endpoint.users == 0
    assert endpoint.circuit.failures == case.host_failures
    own = endpoint.hooks.get("h")
    assert (own.failures if own is not None else None) == case.own
    assert (endpoint.progress > since) is case.progress
    assert (endpoint.gap is not None) is case.progress
    assert (bench.endpoints.find(A) is endpoint) is not endpoint.idle  # idle: dropped
    assert other.stage == SENT


async def test_a_cancelled_attempt_gives_back_what_it_held_at_each_stage() -> None:
    bench = Bench(per_endpoint=1, total=2)
    assert bench.attempt(B).stage == SENT
    sent, for_global = bench.attempt(A), bench.attempt(C)
    for_endpoint = bench.attempt(A)
    assert (sent.stage, for_global.stage, for_endpoint.stage) == (SENT, FOR_GLOBAL,
                                                                  FOR_ENDPOINT)
    for sending in (for_endpoint, for_global, sent):
        sending.cancel()
    assert bench.endpoints.in_flight == 1
    assert [e.name for e in bench.endpoints] == [B]  # A and C: nothing left to keep
    bench.wire.answer(0, 200)
    assert bench.endpoints.in_flight == 0 and list(bench.endpoints) == []
    assert list(bench.outcomes) == ["msg_1"]  # the cancelled ones: not told


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
