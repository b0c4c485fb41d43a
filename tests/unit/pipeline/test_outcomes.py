"""The delivery log's seam in the pipeline: the Dispatcher (and its Endings) with an
OutcomeLog over an in-memory producer. Each final outcome and each parking writes one
record, and a source record is finished only once its outcome records are acked."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from hookd.delivery.retries import ErrorKind, Outcome, Verdict, classify_status
from hookd.kafka.batching import BatchedProducer
from hookd.kafka.offsets import OffsetTracker
from hookd.kafka.outcomelog import OutcomeLog
from hookd.kafka.parking import Parked, ParkingLot
from hookd.kafka.stalls import StallWatch
from hookd.kafka.writes import WriteWatch
from hookd.pipeline.dispatch import Dispatcher
from hookd.pipeline.runtime import Runtime, load_config
from hookd.requests.signing import webhook_id
from hookd.telemetry.redact import Redactor
from tests.unit.conftest import WriteConfig
from tests.unit.pipeline.test_dispatch import (
    CONFIG,
    OK,
    TOPIC,
    FakeProducer,
    FakeSender,
    FakeSink,
    Record,
    record,
)

LOG = "hookd.outcomes"
TP = TopicPartition(TOPIC, 0)


@pytest.fixture
def rt(write_config: WriteConfig) -> Runtime:
    return load_config(write_config(CONFIG).main, environ={})


class Closed(FakeSender):
    """Every endpoint's circuit is open: deliveries are parked unsent, gathered."""

    def unavailable(self, endpoint: str, hook: str | None = None) -> Outcome | None:
        return Outcome(Verdict.PARK, ErrorKind.CIRCUIT_OPEN, None, f"circuit open for {endpoint}")


class Log:
    """A Dispatcher with a delivery log; the log's records as JSON documents."""

    def __init__(self, runtime: Runtime, sender: FakeSender, *, parking: bool = False,
                 producer: FakeProducer | None = None, batched: bool = False) -> None:
        """`batched`: the log writes through the daemon's BatchedProducer (over
        `producer`, a FakeBatches), as in production."""
        self.producer = producer or (FakeBatches() if batched else FakeProducer())
        self.batches = Counting(self.producer, linger=0.001) if batched else None
        self.watch = WriteWatch(StallWatch("producer", 60.0, noun="producer"))
        self.lot = ParkingLot(FakeProducer(), None, "hookd.retry", 4) if parking else None
        self.sink = FakeSink()
        self.dispatcher = Dispatcher(sender, self.sink, lambda: runtime,
                                     lambda: Redactor(runtime.secrets), self.lot,
                                     writes=self.watch,
                                     outcomes=OutcomeLog(self.batches or self.producer, LOG,
                                                         self.watch))
        self.tracker = OffsetTracker()

    def submit(self, rec: Record, parked: bool = False) -> None:
        ticket = self.tracker.start(TopicPartition(rec.topic, rec.partition), rec.offset)
        submit = self.dispatcher.submit_parked if parked else self.dispatcher.submit
        submit(rec, lambda: self.tracker.finish(ticket))

    async def settle(self) -> None:
        assert await self.dispatcher.drain(5.0) == 0, "records left unfinished"

    def records(self) -> list[dict[str, Any]]:
        out = []
        for topic, value, key, headers in self.producer.records:
            assert topic == LOG
            doc = orjson.loads(value)
            assert key == doc["event_id"].encode()
            assert dict(headers) == {"hookd-outcome": doc["outcome"].encode(),
                                     "hookd-hook": doc["hook"].encode()}
            out.append(doc)
        return sorted(out, key=lambda d: (d["source"]["offset"], d["hook"]))


class FakeBatch:
    """What BatchedProducer fills: its records, in a list."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes, bytes | None, list[tuple[str, bytes]]]] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: None,
               headers: list[tuple[str, bytes]]) -> object:
        self.items.append((value, key, headers))
        return self  # (not None: taken)

    def close(self) -> None:
        pass


class FakeBatches(FakeProducer):
    """The producer under BatchedProducer: a batch's records are written when it is sent,
    which counts as one write (failed for the first `failures`, held with `hold`)."""

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int,
                         ) -> asyncio.Future[None]:
        self.writes += 1
        if self.hold is not None:
            await self.hold.wait()
        if self.writes <= self.failures:
            raise ConnectionError("broker unreachable")
        self.records += [(topic, value, key, headers) for value, key, headers in batch.items]
        acked = asyncio.get_running_loop().create_future()
        acked.set_result(None)
        return acked


class Counting(BatchedProducer):
    """Counts the records that joined a batch without a task (`append`)."""

    appended = 0

    def append(self, *args: Any) -> bool:
        taken = super().append(*args)
        self.appended += taken
        return taken


def brief(doc: dict[str, Any]) -> tuple[Any, ...]:
    error = doc["error"]
    return (doc["source"]["offset"], doc["hook"], doc["outcome"], doc["status"],
            doc["attempts"], error and error["kind"])


async def test_delivered_and_dead_lettered_each_write_one_record_and_the_offset_waits(
        rt: Runtime) -> None:
    hold = asyncio.Event()
    log = Log(rt, FakeSender(lambda c: OK if c.hook == "a" else classify_status(404)),
              producer=FakeProducer(hold=hold))
    log.submit(record(0, "Answered"))  # hooks a (200) and b (404)
    for _ in range(200):
        if log.producer.writes == 2:
            break
        await asyncio.sleep(0.01)
    assert log.producer.writes == 2 and len(log.sink.letters) == 1  # the letter is acked...
    assert log.tracker.committable() == {}  # ...but the outcome records are not: no commit
    hold.set()
    await log.settle()
    assert log.tracker.committable() == {TP: 1}
    delivered, dead = log.records()
    assert [brief(delivered), brief(dead)] == [(0, "a", "delivered", 200, 1, None),
                                               (0, "b", "dead_lettered", 404, 1, "http_status")]
    assert delivered["webhook_id"] == webhook_id("cc.events-0-0", "a")
    assert delivered["first_attempt_at"] and delivered["last_attempt_at"]
    assert delivered["latency_ms"] >= 0 and delivered["error"] is None
    letter = log.sink.letters[0]  # the log says what the dead letter says
    assert dead["error"] == {"kind": "http_status", "status": 404, "message": letter.message}
    assert dead["event_id"] == letter.event_id and dead["attempts"] == letter.attempts


async def test_a_write_the_broker_refuses_is_tried_again_and_its_stall_ends(
        rt: Runtime) -> None:
    log = Log(rt, FakeSender(), producer=FakeProducer(failures=1))
    log.submit(record(0, "Solo"))
    for _ in range(200):
        if log.producer.writes == 1:
            break
        await asyncio.sleep(0.01)
    assert log.watch.failing(LOG) == 1 and log.tracker.committable() == {}
    await log.settle()
    assert [brief(d) for d in log.records()] == [(0, "solo", "delivered", 200, 1, None)]
    assert log.watch.failing(LOG) == 0 and log.tracker.committable() == {TP: 1}


async def test_a_hook_disabled_by_410_is_skipped_with_a_record(rt: Runtime) -> None:
    log = Log(rt, FakeSender(lambda c: classify_status(410) if c.hook == "a" else OK))
    log.submit(record(0, "Answered"))
    await log.settle()
    log.submit(record(1, "Answered"))  # a is disabled now: b delivers, a is skipped
    log.submit(record(2, "Answered", key=b"member-2"))
    await log.settle()
    docs = log.records()
    assert [brief(d) for d in docs] == [
        (0, "a", "dead_lettered", 410, 1, "http_status"), (0, "b", "delivered", 200, 1, None),
        (1, "a", "skipped", None, 0, "hook_disabled"), (1, "b", "delivered", 200, 1, None),
        (2, "a", "skipped", None, 0, "hook_disabled"), (2, "b", "delivered", 200, 1, None)]
    assert docs[2]["error"]["message"].startswith("410 Gone from ")
    assert docs[2]["last_attempt_at"] is None and docs[2]["first_attempt_at"] is None
    assert log.tracker.committable() == {TP: 3}
    assert log.dispatcher.stats.of("a").skipped == 2


async def test_a_record_whose_only_hook_is_disabled_waits_for_its_skipped_record(
        rt: Runtime) -> None:
    log = Log(rt, FakeSender(lambda c: classify_status(410)))
    log.submit(record(0, "Solo"))
    await log.settle()
    unmatched = log.dispatcher.counters.unmatched
    log.producer.hold = asyncio.Event()
    log.submit(record(1, "Solo"))
    await asyncio.sleep(0.05)
    assert log.tracker.committable() == {TP: 1}  # record 1 waits for its record's ack
    log.producer.hold.set()
    await log.settle()
    assert log.tracker.committable() == {TP: 2}
    assert log.dispatcher.counters.unmatched == unmatched + 1  # as without the log
    assert [brief(d) for d in log.records()] == [
        (0, "solo", "dead_lettered", 410, 1, "http_status"),
        (1, "solo", "skipped", None, 0, "hook_disabled")]


async def test_parked_after_an_answer_names_its_retry_topic_and_due_time(rt: Runtime) -> None:
    log = Log(rt, FakeSender(lambda c: classify_status(503, 60.0, "HTTP 503")), parking=True)
    assert log.lot is not None
    await log.lot.ensure_tiers([30.0])
    log.submit(record(0, "Solo"))
    await log.settle()
    (doc,) = log.records()
    assert brief(doc) == (0, "solo", "parked", 503, 1, "http_status")
    assert doc["retry_topic"] == "hookd.retry.30s" and doc["due_at"] is not None
    assert doc["last_attempt_at"] is not None  # an attempt brought it
    assert log.tracker.committable() == {TP: 1}


async def test_parked_unsent_together_each_delivery_has_its_own_record(rt: Runtime) -> None:
    log = Log(rt, Closed(), parking=True)
    assert log.lot is not None
    await log.lot.ensure_tiers([30.0])
    for n in range(3):
        log.submit(record(n, "Answered", key=f"call-{n}".encode()))
    await log.settle()
    assert len(log.lot.producer.records) == 2  # one retry record per hook, as without the log
    docs = log.records()
    assert [brief(d) for d in docs] == [
        (n, h, "parked", None, 0, "circuit_open") for n in range(3) for h in ("a", "b")]
    assert all(d["last_attempt_at"] is None and d["retry_topic"] == "hookd.retry.30s"
               for d in docs)
    assert log.tracker.committable() == {TP: 3}


async def test_a_parked_delivery_whose_hook_was_removed_is_skipped_with_a_record(
        rt: Runtime) -> None:
    event = record(5, "Answered")
    from hookd.events.decode import decode_event, make_meta

    meta = make_meta(TOPIC, 0, 5, event.key, event.timestamp, [])
    parked = Parked("removed", decode_event(event.value, meta, "event"), b"member-1", 2,
                    1_700_000_001.0, 0.0, {"kind": "http_status", "status": 503})
    log = Log(rt, FakeSender())
    log.submit(Record("hookd.retry.30s", 1, 9, b"member-1", parked.to_json()), parked=True)
    await log.settle()
    (doc,) = log.records()
    assert brief(doc) == (5, "removed", "skipped", None, 2, "hook_disabled")
    assert doc["source"] == {"topic": TOPIC, "partition": 0, "offset": 5}  # the event's own
    assert log.tracker.committable() == {TopicPartition("hookd.retry.30s", 1): 10}


async def warmed(log: Log) -> None:
    """A first record through the log: it learns the topic's partitions (until then a
    record is written on its own), so the next ones join batches."""
    log.submit(record(0, "Solo"))
    await log.settle()
    assert log.tracker.committable() == {TP: 1}


async def test_batched_a_delivered_record_joins_a_batch_and_its_offset_waits_for_the_ack(
        rt: Runtime) -> None:
    log = Log(rt, FakeSender(lambda c: classify_status(404) if c.hook == "b" else OK),
              batched=True)
    await warmed(log)
    assert log.batches is not None and isinstance(log.producer, FakeBatches)
    log.producer.hold = hold = asyncio.Event()
    log.submit(record(1, "Answered"))  # a: 200 (appended), b: 404 (dead-lettered, awaited)
    for _ in range(200):
        if log.producer.writes == 2:
            break
        await asyncio.sleep(0.01)
    assert log.batches.appended == 1 and log.producer.writes == 2  # one batch for both
    assert log.tracker.committable() == {TP: 1}  # held: record 1 is not finished
    hold.set()
    await log.settle()
    assert log.tracker.committable() == {TP: 2}
    assert [brief(d) for d in log.records()] == [
        (0, "solo", "delivered", 200, 1, None), (1, "a", "delivered", 200, 1, None),
        (1, "b", "dead_lettered", 404, 1, "http_status")]
    assert log.records()[1]["webhook_id"] == webhook_id("cc.events-0-1", "a")


async def test_batched_a_batch_that_fails_is_written_again_alone_and_its_stall_ends(
        rt: Runtime) -> None:
    log = Log(rt, FakeSender(), batched=True)
    await warmed(log)
    assert log.batches is not None
    log.producer.failures = log.producer.writes + 1  # the next batch fails
    log.submit(record(1, "Solo"))
    for _ in range(200):
        if log.watch.failing(LOG) == 1:
            break
        await asyncio.sleep(0.01)
    assert log.batches.appended == 1 and log.watch.failing(LOG) == 1
    assert log.tracker.committable() == {TP: 1}
    await log.settle()  # tried again after its pause, acked
    assert [brief(d) for d in log.records()] == [(0, "solo", "delivered", 200, 1, None),
                                                 (1, "solo", "delivered", 200, 1, None)]
    assert log.watch.failing(LOG) == 0 and log.tracker.committable() == {TP: 2}


async def test_batched_a_revoked_delivery_is_not_finished_by_its_batchs_later_ack(
        rt: Runtime) -> None:
    log = Log(rt, FakeSender(), batched=True)
    await warmed(log)
    assert log.batches is not None
    log.producer.hold = hold = asyncio.Event()
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
    log.submit(record(1, "Solo"))
    for _ in range(200):
        if log.batches.appended == 1:
            break
        await asyncio.sleep(0.01)
    assert log.batches.appended == 1
    assert await log.dispatcher.abandon({TP}) == 1
    hold.set()
    await log.batches.flush()  # the batch is acked after the revocation
    await asyncio.sleep(0.01)
    assert log.dispatcher.pending == 0 and errors == []
    assert log.tracker.committable() == {TP: 1}  # record 1 is read again, not committed
    assert [brief(d) for d in log.records()] == [(0, "solo", "delivered", 200, 1, None),
                                                 (1, "solo", "delivered", 200, 1, None)]
