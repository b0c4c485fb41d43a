"""hookd.pipeline.dispatch.Dispatcher with a fake dead-letter sink, a real OffsetTracker and a
Runtime loaded from a config written to tmp_path. What is about the sender's contract
(connections refused, timeouts, an open circuit) goes through a real HttpSender to
127.0.0.1: a closed port, or an aiohttp server that fails or delays on cue; a fake Sender
only where the dispatch logic is tested (fan-out, order, counting, parking)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiokafka import TopicPartition

from hookd.config import DeliveryConfig
from hookd.delivery.retries import ErrorKind, Outcome, Verdict, classify_status, failure
from hookd.delivery.sender import AttemptsAsTasks, HttpSender
from hookd.kafka.deadletter import DeadLetter
from hookd.kafka.offsets import OffsetTracker
from hookd.kafka.parking import FORMAT_GROUP, ParkingLot, read_parked
from hookd.pipeline.dispatch import Dispatcher
from hookd.pipeline.runtime import Runtime, load_config
from hookd.pipeline.way import SLICE
from hookd.requests.proxy import Route
from hookd.requests.render import Request
from hookd.requests.signing import Signer
from hookd.telemetry.redact import Redactor
from tests.unit.conftest import WriteConfig
from tests.unit.delivery.test_sender import LOOPBACK, closed_port, request

TOPIC = "cc.events"
TP = TopicPartition(TOPIC, 0)
DOWN = f"http://127.0.0.1:{closed_port()}"  # nothing listens: connections are refused

CONFIG = """
delivery:
  retry: {schedule: [10ms, 20ms], jitter: 0.0}
hooks:
  - id: a
    event: Answered
    request: {url: "http://127.0.0.1/a"}
  - id: b
    event: [Answered, Joined]
    request: {url: "http://127.0.0.1/b"}
  - id: c
    event: Joined
    request: {url: "http://127.0.0.1/c"}
  - id: disabled-hook
    enabled: false
    event: Answered
    request: {url: "http://127.0.0.1/disabled"}
  - id: solo
    event: Solo
    request: {url: "http://127.0.0.1/solo"}
  - id: bad-render
    event: Render
    request: {url: "http://127.0.0.1/{{ no_such_field }}"}
  - id: anywhere
    event: Anywhere
    request: {url: "http://{{ host }}/anywhere"}
""".replace("http://127.0.0.1/", f"{DOWN}/")


@dataclass
class Record:
    """What the dispatcher reads of an aiokafka ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = 1_700_000_000_000
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def record(offset: int, event: str = "Answered", key: bytes | None = b"member-1",
           partition: int = 0, **payload: Any) -> Record:
    value = orjson.dumps({"event": event, "seq": offset, **payload})
    return Record(TOPIC, partition, offset, key, value)


@dataclass(frozen=True)
class Call:
    hook: str
    seq: int
    attempt: int  # 1, 2, ... per (hook, seq)


Respond = Callable[[Call], Outcome | Awaitable[Outcome]]
OK = Outcome(Verdict.DELIVERED, status=200)


class FakeSender(AttemptsAsTasks):
    """The Sender protocol; answers through `respond` (default: 200), records every call."""

    def __init__(self, respond: Respond | None = None) -> None:
        self.respond: Respond = respond or (lambda call: OK)
        self.calls: list[Call] = []
        self.log: list[tuple[str, str, int]] = []  # ("start"|"end", hook, seq)

    async def attempt(self, request: Request, signer: Signer | None, timeout: float,
                      tls: ssl.SSLContext | None = None,
                      extra_headers: Mapping[str, str] | None = None,
                      proxy: Route | None = None) -> Outcome:
        seq = orjson.loads(request.body)["seq"]
        n = 1 + sum(1 for c in self.calls if (c.hook, c.seq) == (request.hook_id, seq))
        call = Call(request.hook_id, seq, n)
        self.calls.append(call)
        self.log.append(("start", call.hook, seq))
        result = self.respond(call)
        if inspect.isawaitable(result):
            result = await result
        self.log.append(("end", call.hook, seq))
        return result

    def unavailable(self, endpoint: str, hook: str | None = None) -> Outcome | None:
        return None

    def hooks_for(self, seq: int) -> set[str]:
        return {c.hook for c in self.calls if c.seq == seq}


class FakeSink:
    """The DeadLetterSink protocol: a list; fails the first `failures` publishes."""

    topic = "dlq"

    def __init__(self, failures: int = 0) -> None:
        self.letters: list[DeadLetter] = []
        self.failures = failures
        self.publishes = 0

    async def publish(self, letter: DeadLetter) -> None:
        self.publishes += 1
        if self.publishes <= self.failures:
            raise ConnectionError("broker unreachable")
        self.letters.append(letter)


@pytest.fixture
def runtime(write_config: WriteConfig) -> Runtime:
    return load_config(write_config(CONFIG).main, environ={})


class Harness:
    """A Dispatcher wired as the daemon wires it: a real OffsetTracker, `done` finishing the
    record's ticket."""

    def __init__(self, runtime: Runtime, sender: FakeSender | None = None,
                 sink: FakeSink | None = None) -> None:
        self.sender = sender or FakeSender()
        self.sink = sink or FakeSink()
        self.tracker = OffsetTracker()
        self.dispatcher = Dispatcher(self.sender, self.sink, lambda: runtime,
                                     lambda: Redactor(runtime.secrets))
        self.counters = self.dispatcher.counters

    def submit(self, rec: Record) -> None:
        ticket = self.tracker.start(TopicPartition(rec.topic, rec.partition), rec.offset)
        self.dispatcher.submit(rec, lambda: self.tracker.finish(ticket))

    @property
    def pending(self) -> int:
        return self.dispatcher.pending

    @property
    def letters(self) -> list[DeadLetter]:
        return self.sink.letters

    async def drain(self, timeout: float) -> int:
        return await self.dispatcher.drain(timeout)

    async def settle(self) -> None:
        assert await self.drain(5.0) == 0, "records left unfinished"


Make = Callable[..., Harness]


@pytest.fixture
def make(runtime: Runtime) -> Make:
    def build(sender: FakeSender | None = None, sink: FakeSink | None = None) -> Harness:
        return Harness(runtime, sender, sink)
    return build


# ------------------------------------------------------------------------- fan-out

async def test_fan_out_to_every_matching_enabled_hook(make: Make) -> None:
    d = make()
    d.submit(record(0, "Answered"))
    d.submit(record(1, "Joined"))
    d.submit(record(2, "answered"))  # names match case-insensitively
    d.submit(record(3, "Nobody"))
    await d.settle()
    sender = d.sender
    assert sender.hooks_for(0) == {"a", "b"}
    assert sender.hooks_for(1) == {"b", "c"}
    assert sender.hooks_for(2) == {"a", "b"}
    assert sender.hooks_for(3) == set()
    assert len(sender.calls) == 6  # one request per (event, hook)
    assert d.letters == []
    assert d.tracker.committable() == {TP: 4}
    assert (d.counters.events, d.counters.delivered, d.counters.dead_lettered) == (4, 6, 0)
    assert [d.dispatcher.stats.of(h).delivered for h in ("a", "b", "c")] == [2, 3, 1]


# ------------------------------------------------------------------------- ordering

async def test_deliveries_start_a_slice_per_loop_iteration(make: Make) -> None:
    """A fetch's deliveries start SLICE at a time, one slice per iteration of the loop, so
    the loop reads answers (and the next fetch) between them; first come, first served."""
    iteration = 0
    running = True

    def tick() -> None:
        nonlocal iteration
        iteration += 1
        if running:
            asyncio.get_running_loop().call_soon(tick)

    started: list[tuple[int, int]] = []  # (loop iteration, seq) of each attempt begun

    class Counting(FakeSender):
        def begin(self, request: Request, *args: Any) -> Any:
            started.append((iteration, orjson.loads(request.body)["seq"]))
            return super().begin(request, *args)

    d = make(Counting())
    tick()
    records = 3 * SLICE + 7
    for n in range(records):
        d.submit(record(n, "Solo", key=f"k{n}".encode()))
    await d.settle()
    running = False
    assert [seq for _, seq in started] == list(range(records))  # in the order they came
    per_iteration = collections.Counter(it for it, _ in started)
    assert max(per_iteration.values()) == SLICE
    assert len(per_iteration) == 4  # 50, 50, 50, 7


async def test_same_key_same_hook_in_offset_order_even_when_the_first_is_slow(make: Make) -> None:
    async def respond(call: Call) -> Outcome:
        await asyncio.sleep(0.15 if call.seq == 0 else 0.0)
        return OK

    d = make(FakeSender(respond))
    for offset in range(4):
        d.submit(record(offset, "Solo", key=b"member-1"))
    await d.settle()
    assert d.sender.log == [(step, "solo", seq) for seq in range(4)
                                for step in ("start", "end")]


async def test_order_holds_through_retries_and_failures(make: Make) -> None:
    async def respond(call: Call) -> Outcome:
        if call.seq == 0:
            await asyncio.sleep(0.02)
            return classify_status(503) if call.attempt < 3 else OK
        return classify_status(404) if call.seq == 1 else OK

    d = make(FakeSender(respond))
    for offset in range(3):
        d.submit(record(offset, "Solo"))
    await d.settle()
    assert [c.seq for c in d.sender.calls] == [0, 0, 0, 1, 2]
    assert [dl.source.offset for dl in d.letters] == [1]


async def test_different_keys_run_concurrently(make: Make) -> None:
    arrived: list[int] = []
    both = asyncio.Event()

    async def respond(call: Call) -> Outcome:
        arrived.append(call.seq)
        if len(arrived) == 2:
            both.set()
        try:
            await asyncio.wait_for(both.wait(), 1.0)
        except TimeoutError:
            return failure(ErrorKind.BLOCKED, "ran alone: not concurrent")
        return OK

    d = make(FakeSender(respond))
    d.submit(record(0, "Solo", key=b"member-1"))
    d.submit(record(1, "Solo", key=b"member-2"))
    await d.settle()
    assert d.letters == []
    assert d.counters.delivered == 2


async def test_same_key_different_hooks_run_concurrently(make: Make) -> None:
    both = asyncio.Event()
    seen: set[str] = set()

    async def respond(call: Call) -> Outcome:
        seen.add(call.hook)
        if seen == {"a", "b"}:
            both.set()
        try:
            await asyncio.wait_for(both.wait(), 1.0)
        except TimeoutError:
            return failure(ErrorKind.BLOCKED, "not concurrent")
        return OK

    d = make(FakeSender(respond))
    d.submit(record(0, "Answered", key=b"member-1"))
    await d.settle()
    assert d.letters == [] and d.counters.delivered == 2


async def test_offsets_commit_in_order_although_events_finish_out_of_order(make: Make) -> None:
    release = asyncio.Event()

    async def respond(call: Call) -> Outcome:
        if call.seq == 0:
            await release.wait()
        return OK

    d = make(FakeSender(respond))
    d.submit(record(0, "Solo", key=b"member-1"))
    d.submit(record(1, "Solo", key=b"member-2"))
    d.submit(record(2, "Nobody"))
    for _ in range(100):
        if d.pending == 1:
            break
        await asyncio.sleep(0.01)
    assert d.pending == 1
    assert d.tracker.committable() == {}  # 1 and 2 are done, 0 is not
    release.set()
    await d.settle()
    assert d.tracker.committable() == {TP: 3}


# ------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("value", [b"\xff\xfe", b"not json", b"[1, 2]", b"{}",
                                   b'{"event": ""}', None],
                         ids=["not-utf8", "not-json", "array", "no-name", "empty-name",
                              "tombstone"])
async def test_decode_error_is_one_dead_letter_and_the_offset_finishes(
        make: Make, value: bytes | None) -> None:
    d = make()
    d.submit(Record(TOPIC, 0, 41, b"member-1", value))
    d.submit(record(42, "Solo"))  # consumption goes on
    await d.settle()
    (letter,) = d.letters
    assert letter.kind is ErrorKind.DECODE
    assert letter.hook is None and letter.payload is None and letter.event is None
    assert letter.raw == value  # a tombstone (None) stays None: raw null in the record
    assert letter.attempts == 0
    assert letter.key == b"member-1"
    assert (letter.source.topic, letter.source.partition, letter.source.offset) == (TOPIC, 0, 41)
    doc = orjson.loads(letter.to_json())
    assert doc["error"]["kind"] == "decode" and doc["hook"] is None and doc["payload"] is None
    assert d.tracker.committable() == {TP: 43}
    assert d.counters.decode_errors == 1 and d.counters.dead_lettered == 1
    assert d.counters.bad_dead_lettered == 1  # a record of no hook: not in any hook's figures
    assert d.sender.hooks_for(42) == {"solo"}


async def test_render_error_dead_letters_with_no_attempts(make: Make) -> None:
    d = make()
    d.submit(record(7, "Render", call_id="c-9"))
    await d.settle()
    assert d.sender.calls == []
    (letter,) = d.letters
    assert letter.kind is ErrorKind.RENDER
    assert letter.hook == "bad-render"
    assert letter.attempts == 0
    assert letter.status is None
    assert "no_such_field" in letter.message
    assert letter.event == "Render"
    assert letter.payload is not None and letter.payload["call_id"] == "c-9"
    assert letter.source.offset == 7
    assert d.tracker.committable() == {TP: 8}


# ------------------------------------------------------------------------- outcomes

async def test_a_bug_in_a_delivery_dead_letters_it_as_internal(make: Make) -> None:
    """What raises, in the attempt or off the common way, is dead-lettered as `internal`
    and the record finishes: a bug does not wedge its partition."""
    def broken(call: Call) -> Outcome:
        raise RuntimeError(f"bug {call.seq}")

    d = make(FakeSender(broken))
    d.submit(record(0, "Solo"))
    d.submit(record(1, "Solo", key=b"other"))
    await d.settle()
    assert sorted((x.kind, x.message) for x in d.letters) == [
        (ErrorKind.INTERNAL, "RuntimeError: bug 0"), (ErrorKind.INTERNAL, "RuntimeError: bug 1")]
    assert d.tracker.committable() == {TP: 2}

    # a bug in what follows a failed attempt (here: its ending raises, once, then always)
    for bugs, letters in ((1, [ErrorKind.INTERNAL]), (2, [])):
        d = make(FakeSender(lambda call: classify_status(400)))
        endings = d.dispatcher._endings
        fail, raised = endings.fail, 0

        async def buggy(job: Any, outcome: Outcome, fail: Any = fail, bugs: int = bugs) -> None:
            nonlocal raised
            if raised < bugs:
                raised += 1
                raise RuntimeError("ending bug")
            await fail(job, outcome)

        endings.fail = buggy  # type: ignore[method-assign]
        d.submit(record(0, "Solo"))
        await d.settle()
        assert [x.kind for x in d.letters] == letters
        assert d.tracker.committable() == {TP: 1}  # (given up after two: not wedged)


async def test_404_dead_letters_after_one_attempt(make: Make) -> None:
    d = make(FakeSender(lambda call: classify_status(404, message="HTTP 404: nope")))
    d.submit(record(0, "Solo"))
    await d.settle()
    assert len(d.sender.calls) == 1
    (letter,) = d.letters
    assert (letter.kind, letter.status, letter.attempts) == (ErrorKind.HTTP_STATUS, 404, 1)
    assert letter.hook == "solo" and letter.event == "Solo" and letter.event_id
    assert letter.message == "HTTP 404: nope"
    assert letter.first_attempt_at is not None and letter.last_attempt_at is not None
    assert letter.first_attempt_at <= letter.last_attempt_at
    assert letter.key == b"member-1"
    assert d.tracker.committable() == {TP: 1}
    assert (d.counters.delivered, d.counters.dead_lettered) == (0, 1)
    assert d.dispatcher.stats.of("solo").dead_lettered == 1


async def test_retries_then_success(make: Make) -> None:
    d = make(FakeSender(lambda call: classify_status(503) if call.attempt < 3 else OK))
    d.submit(record(0, "Solo"))
    await d.settle()
    assert [c.attempt for c in d.sender.calls] == [1, 2, 3]
    assert d.letters == []
    assert (d.counters.delivered, d.counters.dead_lettered, d.counters.retrying) == (1, 0, 0)
    assert d.dispatcher.stats.of("solo").retried == 2


async def test_blocked_is_not_retried(make: Make) -> None:
    d = make(FakeSender(lambda call: failure(ErrorKind.BLOCKED, "10.0.0.1 not allowed")))
    d.submit(record(0, "Solo"))
    await d.settle()
    (letter,) = d.letters
    assert (letter.kind, letter.attempts) == (ErrorKind.BLOCKED, 1)


async def test_410_disables_the_hook_until_reset(make: Make) -> None:
    d = make(FakeSender(lambda call: classify_status(410) if call.hook == "a" else OK))
    d.submit(record(0, "Answered"))
    await d.settle()
    (letter,) = d.letters
    assert (letter.hook, letter.status, letter.attempts) == ("a", 410, 1)
    assert "a" in d.dispatcher.disabled and "b" not in d.dispatcher.disabled
    d.submit(record(1, "Answered"))
    await d.settle()
    assert d.sender.hooks_for(1) == {"b"}  # a is skipped now
    assert len(d.letters) == 1  # skipping is not a failure
    d.dispatcher.reset_disabled()  # what a reload does
    assert d.dispatcher.disabled == {}
    d.submit(record(2, "Answered"))
    await d.settle()
    assert d.sender.hooks_for(2) == {"a", "b"}
    assert d.tracker.committable() == {TP: 3}


async def test_410_dead_letters_what_was_already_queued_behind_it(make: Make) -> None:
    """Same key, same hook: the second event waits behind the first; once the first gets
    410 the second is not sent to the gone endpoint, and still ends in the dead letters."""
    async def respond(call: Call) -> Outcome:
        await asyncio.sleep(0.05)
        return classify_status(410)

    d = make(FakeSender(respond))
    d.submit(record(0, "Solo"))
    d.submit(record(1, "Solo"))
    await d.settle()
    assert [c.seq for c in d.sender.calls] == [0]
    assert [(dl.source.offset, dl.kind) for dl in d.letters] == [
        (0, ErrorKind.HTTP_STATUS), (1, ErrorKind.HTTP_STATUS)]
    assert d.letters[0].status == 410
    assert d.tracker.committable() == {TP: 2}


# ------------------------------------------------------------------------- dead-letter ack

@pytest.mark.parametrize(("value", "failures"), [(b"not json", 1), (None, 2)],
                         ids=["decode", "delivery-404"])
async def test_offset_finishes_only_after_the_dead_letter_is_published(
        make: Make, value: bytes | None, failures: int) -> None:
    sink = FakeSink(failures=failures)
    d = make(FakeSender(lambda call: classify_status(404)), sink)
    d.submit(Record(TOPIC, 0, 0, b"k", value) if value else record(0, "Solo"))
    for _ in range(100):
        if sink.publishes >= 1:
            break
        await asyncio.sleep(0.01)
    assert sink.publishes >= 1 and sink.letters == []
    assert d.tracker.committable() == {}
    assert d.tracker.in_flight(TP) == 1
    await asyncio.sleep(0.2)  # still failing (the second try comes 0.5 s after the first)
    assert d.tracker.committable() == {}
    await d.settle()
    assert sink.publishes == failures + 1
    assert len(sink.letters) == 1
    assert d.tracker.committable() == {TP: 1}
    assert d.counters.dead_lettered == 1


# ------------------------------------------------------------------------- drain

async def test_drain_cancels_what_is_left(make: Make) -> None:
    never = asyncio.Event()

    async def respond(call: Call) -> Outcome:
        if call.seq > 0:
            await never.wait()
        return OK

    d = make(FakeSender(respond))
    d.submit(record(0, "Solo", key=b"k0"))
    d.submit(record(1, "Solo", key=b"k1"))
    d.submit(record(2, "Solo", key=b"k2"))
    for _ in range(100):
        if d.pending == 2 and len(d.sender.calls) == 3:
            break
        await asyncio.sleep(0.01)
    assert d.pending == 2
    assert await d.drain(0.1) == 2
    assert d.pending == 0
    assert d.tracker.committable() == {TP: 1}  # the cancelled events are not committed
    assert d.letters == []
    assert await d.drain(0.1) == 0


async def test_drain_waits_for_work_that_finishes_in_time(make: Make) -> None:
    async def respond(call: Call) -> Outcome:
        await asyncio.sleep(0.05)
        return OK

    d = make(FakeSender(respond))
    d.submit(record(0, "Solo"))
    assert await d.drain(2.0) == 0
    assert d.tracker.committable() == {TP: 1}


# ------------------------------------------------------------------------- parking

class FakeProducer:
    """What ParkingLot writes with: the records, in a list; fails the first `failures`
    writes; with `hold`, each write waits for it to be set."""

    def __init__(self, failures: int = 0, hold: asyncio.Event | None = None) -> None:
        self.records: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []
        self.failures, self.hold, self.writes = failures, hold, 0

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None,
                            headers: list[tuple[str, bytes]] | None = None) -> None:
        self.writes += 1
        if self.hold is not None:
            await self.hold.wait()
        if self.writes <= self.failures:
            raise ConnectionError("broker unreachable")
        self.records.append((topic, value, key, list(headers or ())))


@pytest.fixture
async def down() -> AsyncIterator[HttpSender]:
    """A real HttpSender whose circuit for CONFIG's host (DOWN) is open, as the daemon's
    opens: a connection refused (`failures: 1`)."""
    sender = HttpSender(DeliveryConfig.model_validate({
        "allow_networks": LOOPBACK, "circuit_breaker": {"failures": 1, "cooldown": "30s"}}))
    refused = await sender.attempt(request(f"{DOWN}/x"), None, 2.0)
    assert refused.kind is ErrorKind.CONNECT
    closed = sender.unavailable(DOWN)
    assert closed is not None and closed.kind is ErrorKind.CIRCUIT_OPEN
    yield sender
    await sender.close()


def attempts_made(dispatcher: Dispatcher) -> int:
    return sum(sum(stat.attempts) for stat in dispatcher.stats.hooks.values())


async def test_hooks_whose_endpoint_is_known_are_parked_unrendered_while_its_circuit_is_open(
        runtime: Runtime, down: HttpSender) -> None:
    producer = FakeProducer()
    lot = ParkingLot(producer, None, "hookd.retry", 4)
    await lot.ensure_tiers([30.0])
    dispatcher = Dispatcher(down, FakeSink(), lambda: runtime,
                            lambda: Redactor(runtime.secrets), lot)
    done: list[int] = []
    dispatcher.submit(record(0, "Answered"), lambda: done.append(0))
    dispatcher.submit(record(1, "Render"), lambda: done.append(1))  # a templated path
    await dispatcher.drain(5.0)
    assert sorted(done) == [0, 1]
    assert attempts_made(dispatcher) == 0  # nothing was sent...
    parked = [p for _, value, _, _ in producer.records for p in read_parked(value)]
    # ...a, b and bad-render were parked: bad-render's path is a template, but its scheme
    # and host are literal, so its endpoint is known before rendering (it is not rendered)
    assert sorted(p.hook for p in parked) == ["a", "b", "bad-render"]
    assert {topic for topic, *_ in producer.records} == {"hookd.retry.30s"}
    assert {(p.attempts, p.error["kind"], p.error["message"]) for p in parked} == {
        (0, "circuit_open", f"circuit open for host {DOWN}")}
    assert dispatcher.counters.parked == 3
    assert dispatcher.counters.dead_lettered == 0


async def test_a_templated_host_is_rendered_then_parked_by_its_open_circuit(
        runtime: Runtime, down: HttpSender) -> None:
    """A hook whose host is templated has no endpoint before rendering: it is rendered,
    and the endpoint's attempt parks it (nothing sent, no attempt spent)."""
    producer = FakeProducer()
    lot = ParkingLot(producer, None, "hookd.retry", 4)
    await lot.ensure_tiers([30.0])
    dispatcher = Dispatcher(down, FakeSink(), lambda: runtime,
                            lambda: Redactor(runtime.secrets), lot)
    dispatcher.submit(record(0, "Anywhere", host=DOWN.removeprefix("http://")), lambda: None)
    assert await dispatcher.drain(5.0) == 0
    [parked] = [p for _, value, _, _ in producer.records for p in read_parked(value)]
    assert (parked.hook, parked.attempts, parked.error["kind"]) == (
        "anywhere", 0, "circuit_open")
    assert attempts_made(dispatcher) == 0


async def test_a_retry_after_longer_than_the_longest_tier_waits_that_tier(
        runtime: Runtime) -> None:
    """A record holds its retry partition until due: a week-long Retry-After must not
    hold every other delivery parked behind it for a week."""
    week = 7 * 86400.0
    sender = FakeSender(lambda call: classify_status(429, week, "slow down"))
    producer = FakeProducer()
    lot = ParkingLot(producer, None, "hookd.retry", 4)
    await lot.ensure_tiers([30.0, 3600.0])
    dispatcher = Dispatcher(sender, FakeSink(), lambda: runtime,
                            lambda: Redactor(runtime.secrets), lot)
    dispatcher.submit(record(0, "Solo"), lambda: None)
    await dispatcher.drain(5.0)
    [(topic, value, _, _)] = producer.records
    assert topic == "hookd.retry.1h"
    [parked] = read_parked(value)
    assert parked.due_at <= time.time() + 3600.0


# ------------------------------------------------------------ parked unsent, gathered
async def closed_dispatcher(runtime: Runtime, producer: FakeProducer,
                            sender: HttpSender | FakeSender) -> tuple[Dispatcher, ParkingLot]:
    lot = ParkingLot(producer, None, "hookd.retry", 4)
    await lot.ensure_tiers([30.0])
    return Dispatcher(sender, FakeSink(), lambda: runtime,
                      lambda: Redactor(runtime.secrets), lot), lot


async def test_deliveries_to_an_unavailable_endpoint_are_parked_as_one_record_per_hook(
        runtime: Runtime, down: HttpSender) -> None:
    producer = FakeProducer(hold=asyncio.Event())
    dispatcher, _ = await closed_dispatcher(runtime, producer, down)
    done: list[int] = []
    for n in range(50):
        dispatcher.submit(record(n, "Answered", key=f"call-{n % 7}".encode()),
                          lambda n=n: done.append(n))
    await asyncio.sleep(0.05)
    assert done == [] and dispatcher.pending == 50  # not before the broker's ack
    assert producer.records == [] and producer.writes == 2  # one write per hook
    assert producer.hold is not None
    producer.hold.set()
    assert await dispatcher.drain(5.0) == 0
    assert sorted(done) == list(range(50))
    assert dispatcher.counters.parked == 100
    by_hook = {}
    for topic, value, key, headers in producer.records:
        assert topic == "hookd.retry.30s"
        doc = orjson.loads(value)
        assert doc["v"] == FORMAT_GROUP and key == doc["hook"].encode()
        assert dict(headers)["hookd-deliveries"] == b"50"
        assert float(dict(headers)["hookd-due"]) == doc["due_at"]
        by_hook[doc["hook"]] = read_parked(value)
    assert sorted(by_hook) == ["a", "b"]
    for parked in by_hook.values():  # in the order they came, each as it was
        assert [p.event.meta.offset for p in parked] == list(range(50))
        assert [p.key for p in parked] == [f"call-{n % 7}".encode() for n in range(50)]
        assert all(p.attempts == 0 and p.error["kind"] == "circuit_open" for p in parked)


async def test_a_gathered_record_the_broker_refuses_is_written_again_until_acked(
        runtime: Runtime, down: HttpSender) -> None:
    producer = FakeProducer(failures=1)
    dispatcher, _ = await closed_dispatcher(runtime, producer, down)
    done: list[int] = []
    dispatcher.submit(record(0, "Solo"), lambda: done.append(0))
    assert await dispatcher.drain(5.0) == 0
    assert done == [0] and producer.writes == 2 and len(producer.records) == 1


async def test_gathered_deliveries_not_acked_by_shutdown_stay_unfinished(
        runtime: Runtime, down: HttpSender) -> None:
    producer = FakeProducer(hold=asyncio.Event())  # never acks
    dispatcher, lot = await closed_dispatcher(runtime, producer, down)
    done: list[int] = []
    for n in range(3):
        dispatcher.submit(record(n, "Answered"), lambda n=n: done.append(n))
    assert await dispatcher.drain(0.1) == 3
    assert done == [] and producer.records == [] and dispatcher.counters.parked == 0
    assert not lot._writing  # the writes were given up


class OpensLater(FakeSender):
    """Answers 200 once `release` is set; its endpoint's circuit opens when told
    (`closed = True`): deliveries are parked unrendered from then on."""

    closed = False

    def __init__(self, release: asyncio.Event) -> None:
        async def slow(call: Call) -> Outcome:
            await release.wait()
            return OK
        super().__init__(slow)

    def unavailable(self, endpoint: str, hook: str | None = None) -> Outcome | None:
        return Outcome(Verdict.PARK, ErrorKind.CONNECT, None, "circuit open", 30.0) \
            if self.closed else None


async def test_a_delivery_waiting_behind_its_key_is_not_gathered_ahead_of_it(
        runtime: Runtime) -> None:
    """Deliveries of one key to one hook keep their order: while one is in flight, the
    next waits behind it rather than being parked ahead of it."""
    release = asyncio.Event()

    sender = OpensLater(release)
    producer = FakeProducer()
    dispatcher, _ = await closed_dispatcher(runtime, producer, sender)
    dispatcher.submit(record(0, "Solo", key=b"k"), lambda: None)  # sent, and waiting
    await asyncio.sleep(0.01)
    sender.closed = True
    dispatcher.submit(record(1, "Solo", key=b"k"), lambda: None)  # behind 0: a task
    dispatcher.submit(record(2, "Solo", key=b"other"), lambda: None)  # nothing ahead
    await asyncio.sleep(0.05)
    [(_, first, _, _)] = producer.records  # 2 was gathered and written at once
    assert [p.event.meta.offset for p in read_parked(first)] == [2]
    release.set()
    assert await dispatcher.drain(5.0) == 0
    offsets = [p.event.meta.offset for _, v, _, _ in producer.records for p in read_parked(v)]
    assert offsets == [2, 1]  # 1 parked once 0 was done, not ahead of it
    assert [c.seq for c in sender.calls] == [0]


async def test_a_delivery_parked_when_its_turn_comes_lets_the_next_of_its_key_go(
        runtime: Runtime) -> None:
    """A key's delivery whose turn comes (its predecessor answered) while the circuit is
    open is parked with its hook's group; the next of its key must not wait behind it for
    the group's ack. (It did, and for ever: the chain still named the parked one, which no
    longer held it, so its end started nothing: the record never finished, the partition's
    commits stopped.)"""
    release, acked = asyncio.Event(), asyncio.Event()

    sender = OpensLater(release)
    producer = FakeProducer(hold=acked)
    dispatcher, _ = await closed_dispatcher(runtime, producer, sender)
    finished: list[int] = []
    dispatcher.submit(record(0, "Solo", key=b"k"), lambda: finished.append(0))  # in flight
    await asyncio.sleep(0.01)
    sender.closed = True
    dispatcher.submit(record(1, "Solo", key=b"k"), lambda: finished.append(1))  # behind 0
    await asyncio.sleep(0.01)
    release.set()  # 0 delivered: 1's turn, parked with its group (the write not acked yet)
    await asyncio.sleep(0.05)
    assert finished == [0]
    dispatcher.submit(record(2, "Solo", key=b"k"), lambda: finished.append(2))
    await asyncio.sleep(0.05)
    acked.set()
    assert await dispatcher.drain(5.0) == 0
    assert sorted(finished) == [0, 1, 2]
    offsets = [p.event.meta.offset for _, v, _, _ in producer.records for p in read_parked(v)]
    assert sorted(offsets) == [1, 2] and offsets.index(1) < offsets.index(2)


async def test_a_group_comes_back_as_its_deliveries_in_order(runtime: Runtime,
                                                           down: HttpSender) -> None:
    producer = FakeProducer()
    dispatcher, _ = await closed_dispatcher(runtime, producer, down)
    for n in range(5):
        dispatcher.submit(record(n, "Solo", key=b"k"), lambda: None)
    await dispatcher.drain(5.0)
    [(topic, value, key, headers)] = producer.records
    sender = FakeSender()
    back = Dispatcher(sender, FakeSink(), lambda: runtime, lambda: Redactor(runtime.secrets))
    done: list[str] = []
    back.submit_parked(Record(topic, 0, 0, key, value, headers=headers), lambda: done.append("x"))
    assert await back.drain(5.0) == 0
    assert done == ["x"]  # the record is finished once all of its deliveries are
    assert [c.seq for c in sender.calls] == [0, 1, 2, 3, 4]
    assert back.counters.delivered == 5


async def test_a_delivery_too_large_for_a_group_is_offered_to_it_once_then_parked_alone(
        runtime: Runtime, down: HttpSender) -> None:
    producer = FakeProducer()
    dispatcher, lot = await closed_dispatcher(runtime, producer, down)
    lot.group_bytes = 10  # every delivery is too large to join a group
    offered: list[str] = []
    park_unsent = lot.park_unsent

    def counted(job: Any, outcome: Any, delay: float, redactor: Any) -> Any:
        offered.append(job.hook_id)
        return park_unsent(job, outcome, delay, redactor)

    lot.park_unsent = counted  # type: ignore[method-assign]
    dispatcher.submit(record(0, "Solo"), lambda: None)
    assert await dispatcher.drain(5.0) == 0
    assert offered == ["solo"]  # not again by the task, nor by the parking alone
    [(_, value, _, headers)] = producer.records
    assert "hookd-deliveries" not in dict(headers)  # its own record
    assert [p.event.meta.offset for p in read_parked(value)] == [0]
    assert dispatcher.counters.parked == 1


# ------------------------------------------------------------------------- revocation

async def test_abandon_cancels_the_revoked_partitions_work_and_nothing_of_it_is_sent_after(
        make: Make) -> None:
    """A key's deliveries queued behind a slow one are given up with it, so none of them
    reaches the receiver once the partition's next owner has begun delivering it; the
    other partition's work goes on, and the abandoned records stay uncommitted."""
    release = asyncio.Event()

    async def respond(call: Call) -> Outcome:
        if call.seq == 0:
            await release.wait()  # in flight at the revocation
        return OK

    d = make(FakeSender(respond))
    for offset in range(3):  # offsets 0, 1, 2 of one key: 1 and 2 wait behind 0
        d.submit(record(offset, "Solo", key=b"k", partition=0))
    d.submit(record(0, "Solo", key=b"other", partition=1))
    await asyncio.sleep(0.05)
    assert d.dispatcher.in_flight(TOPIC, 0) == 3
    assert await d.dispatcher.abandon({TP}) == 3
    assert d.dispatcher.in_flight(TOPIC, 0) == 0
    release.set()
    await d.settle()
    assert [c.seq for c in d.sender.calls if c.hook == "solo"] == [0, 0]  # p0's first, p1's
    assert d.tracker.committable() == {TopicPartition(TOPIC, 1): 1}  # p0: nothing finished
    assert d.pending == 0


async def test_abandon_of_a_partition_with_nothing_in_flight_is_a_no_op(make: Make) -> None:
    d = make()
    d.submit(record(0, "Solo"))
    await d.settle()
    assert await d.dispatcher.abandon({TP, TopicPartition(TOPIC, 7)}) == 0
    assert d.tracker.committable() == {TP: 1}


# -- per-hook figures (hookd.telemetry.hookstats) --------------------------------------------------
async def test_each_final_outcome_is_counted_for_its_hook(make: Make) -> None:
    def respond(call: Call) -> Outcome:
        if call.hook == "a":
            return classify_status(410, message="HTTP 410: gone")
        if call.hook == "b" and call.attempt == 1:
            return classify_status(503, message="HTTP 503: busy")
        return OK

    d = make(FakeSender(respond))
    d.submit(record(0, "Answered"))
    await d.settle()
    d.submit(record(1, "Answered"))  # a is disabled now: skipped
    d.submit(record(2, "Nobody"))  # no hook matches
    d.submit(record(3, "Render"))  # a render error: dead-lettered, never attempted
    await d.settle()
    stats = d.dispatcher.stats
    a, b = stats.of("a"), stats.of("b")
    assert (a.delivered, a.dead_lettered, a.skipped, a.retried) == (0, 1, 1, 0)
    assert a.attempts[4] == 1 and a.last_error == "HTTP 410: gone"
    # (each of b's deliveries: a 503, then a 200)
    assert (b.delivered, b.retried, b.dead_lettered, b.waiting) == (2, 2, 0, 0)
    assert (b.attempts[2], b.attempts[5]) == (2, 2) and b.duration.count == 4
    assert b.last_error == "HTTP 503: busy" and b.last_error_at is not None
    bad = stats.of("bad-render")
    assert (bad.dead_lettered, sum(bad.attempts)) == (1, 0)
    assert bad.last_error is not None and "no_such_field" in bad.last_error
    assert stats.lag.count == 2  # b's two deliveries (the records carry a timestamp)
    assert (d.counters.events, d.counters.unmatched) == (4, 1)


# -- the sender's contract, for real: HttpSender to 127.0.0.1 ------------------------------
@dataclass
class Receiver:
    """An aiohttp server on 127.0.0.1 answering by the path's first segment: /busy 503
    (no Retry-After), /slow only after `gate` is set (or 5 s), anything else 200."""

    port: int = 0
    hits: list[str] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        kind = request.path.split("/")[1]
        if kind == "busy":
            return web.Response(status=503, text="busy")
        if kind == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.gate.wait(), 5.0)
        return web.Response(text="ok")

    async def start(self, port: int = 0) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self.gate.set()
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[[int], Awaitable[Receiver]]]:
    started: list[Receiver] = []

    async def start(port: int = 0) -> Receiver:
        started.append(await Receiver().start(port))
        return started[-1]

    yield start
    for receiver in started:
        await receiver.stop()


class Live:
    """A Dispatcher with a real HttpSender, made from a config whose hooks go to a
    Receiver (templated paths: /busy, /slow), or to DOWN (a templated path and a fixed
    one); retry topics when `parked`."""

    def __init__(self, runtime: Runtime, parking: ParkingLot | None) -> None:
        self.sender = HttpSender(runtime.config.delivery)
        self.sink, self.producer = FakeSink(), parking.producer if parking else None
        self.dispatcher = Dispatcher(self.sender, self.sink, lambda: runtime,
                                     lambda: Redactor(runtime.secrets), parking)
        self.done: list[int] = []

    def submit(self, rec: Record) -> None:
        self.dispatcher.submit(rec, lambda: self.done.append(rec.offset))

    def parked(self) -> list[Any]:
        assert isinstance(self.producer, FakeProducer)
        return [p for _, value, _, _ in self.producer.records for p in read_parked(value)]


LiveFactory = Callable[..., Awaitable[Live]]


@pytest.fixture
async def live(write_config: WriteConfig, receivers: Callable[[int], Awaitable[Receiver]]
               ) -> AsyncIterator[LiveFactory]:
    made: list[Live] = []

    async def build(receiver: Receiver | None = None, *, failures: int = 10,
                    cooldown: str = "30s", schedule: str = "[10ms, 20ms]",
                    parked: bool = False) -> Live:
        there = f"http://127.0.0.1:{(receiver or await receivers(0)).port}"
        runtime = load_config(write_config(f"""
            delivery:
              allow_networks: ["127.0.0.0/8"]
              retry: {{schedule: {schedule}, jitter: 0.0}}
              circuit_breaker: {{failures: {failures}, cooldown: {cooldown}}}
            hooks:
              - {{id: busy, event: Busy, request: {{url: "{there}/busy/{{{{ seq }}}}"}}}}
              - {{id: slow, event: Slow,
                 request: {{url: "{there}/slow/{{{{ seq }}}}", timeout: 200ms}}}}
              - {{id: down, event: [Down, DownBoth],
                 request: {{url: "{DOWN}/calls/{{{{ seq }}}}"}}}}
              - {{id: down-fixed, event: DownBoth, request: {{url: "{DOWN}/fixed"}}}}
            """).main, environ={})
        lot = None
        if parked:
            lot = ParkingLot(FakeProducer(), None, "hookd.retry", 4)
            await lot.ensure_tiers([30.0])
        made.append(Live(runtime, lot))
        return made[-1]

    yield build
    for one in made:
        await one.sender.close()


@pytest.mark.parametrize(("event", "kind", "status", "path", "status_class"), [
    ("Busy", ErrorKind.HTTP_STATUS, 503, "/busy/0", 5),
    ("Slow", ErrorKind.TIMEOUT, None, "/slow/0", 0),
    ("Down", ErrorKind.CONNECT, None, None, 0),  # refused: nothing listens
])
async def test_exhausted_retries(live: LiveFactory, receivers: Callable[[int], Awaitable[Receiver]],
                                 event: str, kind: ErrorKind, status: int | None,
                                 path: str | None, status_class: int) -> None:
    receiver = await receivers(0)
    d = await live(receiver)
    d.submit(record(0, event))
    assert await d.dispatcher.drain(10.0) == 0 and d.done == [0]
    hook = d.dispatcher.runtime().hook(event.lower())
    assert hook is not None and hook.schedule == (0.01, 0.02)
    (letter,) = d.sink.letters
    assert (letter.kind, letter.status, letter.attempts) == (kind, status, 3)
    assert receiver.hits == ([path] * 3 if path else [])  # the path rendered per event
    stat = d.dispatcher.stats.of(hook.id)
    assert (stat.attempts[status_class], sum(stat.attempts)) == (3, 3)
    assert (stat.retried, stat.dead_lettered, stat.delivered) == (2, 1, 0)


async def test_refused_connections_open_the_host_circuit_and_the_rest_is_parked_unsent(
        live: LiveFactory) -> None:
    """A templated path on a host that refuses: its retries open the host's circuit (no
    answer is the host's trouble), the delivery is parked for its next tier; then every
    delivery to that host, of this hook or a neighbour with a fixed URL, is parked before
    it is rendered, as `circuit_open`, with no attempt spent."""
    d = await live(failures=2, schedule="[10ms, 30s]", parked=True)
    d.submit(record(0, "Down", key=b"k0"))
    assert await d.dispatcher.drain(5.0) == 0
    [first] = d.parked()
    assert (first.hook, first.attempts, first.error["kind"]) == ("down", 2, "connect")
    closed = d.sender.unavailable(DOWN)
    assert closed is not None and closed.kind is ErrorKind.CIRCUIT_OPEN
    d.submit(record(1, "DownBoth", key=b"k1"))
    assert await d.dispatcher.drain(5.0) == 0 and d.done == [0, 1]
    later = d.parked()[1:]
    assert sorted((p.hook, p.attempts, p.error["kind"], p.error["message"]) for p in later) == [
        (hook, 0, "circuit_open", f"circuit open for host {DOWN}")
        for hook in ("down", "down-fixed")]
    stats = d.dispatcher.stats
    assert (sum(stats.of("down").attempts), sum(stats.of("down-fixed").attempts)) == (2, 0)
    assert d.sink.letters == []


async def test_deliveries_under_way_when_the_circuit_opens_are_parked_as_circuit_open(
        live: LiveFactory) -> None:
    """Rendered and sent before the circuit opened: their retry meets the open circuit in
    the endpoint's attempt, which sends nothing (`circuit_open`, not `connect`), and they
    are parked with the one attempt they made."""
    d = await live(failures=2, parked=True)
    d.submit(record(0, "Down", key=b"k0"))
    d.submit(record(1, "Down", key=b"k1"))
    assert await d.dispatcher.drain(5.0) == 0 and sorted(d.done) == [0, 1]
    parked = d.parked()
    assert sorted((p.event.meta.offset, p.attempts, p.error["kind"]) for p in parked) == [
        (0, 1, "circuit_open"), (1, 1, "circuit_open")]
    assert sum(d.dispatcher.stats.of("down").attempts) == 2 and d.sink.letters == []


async def test_without_retry_topics_an_open_circuit_waits_in_memory_until_the_host_is_back(
        live: LiveFactory, receivers: Callable[[int], Awaitable[Receiver]]) -> None:
    """No retry topics: a delivery that meets its open circuit waits for the probe, no
    attempt spent, and is delivered by it once the host listens again."""
    d = await live(failures=1, cooldown="300ms")
    stat = d.dispatcher.stats.of("down")
    d.submit(record(0, "Down"))
    for _ in range(200):
        if stat.attempts[0]:
            break
        await asyncio.sleep(0.005)
    assert stat.attempts[0] == 1  # refused: the circuit is open now
    back = await receivers(int(DOWN.rsplit(":", 1)[1]))  # the host comes back
    assert await d.dispatcher.drain(5.0) == 0 and d.done == [0]
    assert back.hits == ["/calls/0"] and d.sink.letters == []
    assert (stat.attempts[0], stat.attempts[2], stat.delivered) == (1, 1, 1)
