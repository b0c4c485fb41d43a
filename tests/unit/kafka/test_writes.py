"""hookd.kafka.writes: the `produce` stall's bookkeeping (a table of steps: writes failing,
tried again, ended, and the clock), the reasons it gives, and until_acked telling it what
happens (the real broker is in tests/integration/test_produce_stall.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
import structlog.testing
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)

from hookd.kafka import writes
from hookd.kafka.parking import TooLargeToPark
from hookd.kafka.stalls import StallWatch, summary
from hookd.kafka.writes import WriteWatch, explain, until_acked

DLQ, TIER = "hookd.dlq", "hookd.retry.5m"
REFUSED = KafkaConnectionError("refused")
DENIED = TopicAuthorizationFailedError()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Step:
    """`at`: seconds since the start; `op`: fail (a write's first failure), again (a
    failed write failed once more), end (a failed write acked or given up), look; then
    what is stalled: {topic: a piece of its reason}."""

    at: float
    op: str
    topic: str = DLQ
    error: BaseException = REFUSED
    stalled: dict[str, str] | None = None


CASES = {
    "a streak younger than stall_after is no stall; older, it is; acked, it ends": [
        Step(0, "fail"), Step(9, "again", stalled={}), Step(10, "look", stalled={DLQ: "refused"}),
        Step(11, "end", stalled={}),
    ],
    "the streak keeps its start and takes the latest error": [
        Step(0, "fail"), Step(5, "again", error=DENIED, stalled={}),
        Step(10, "look", stalled={DLQ: "not retriable: [Error 29] TopicAuthorization"}),
    ],
    "two writes failing: the topic recovers when the last one ends": [
        Step(0, "fail"), Step(3, "fail"), Step(12, "end", stalled={DLQ: "refused"}),
        Step(13, "again", stalled={DLQ: "refused"}), Step(14, "end", stalled={}),
    ],
    "a failing write tried again is still one write": [
        Step(0, "fail"), Step(1, "again"), Step(2, "again"), Step(11, "end", stalled={}),
    ],
    "topics are apart: one recovering leaves the other stalled": [
        Step(0, "fail", topic=TIER), Step(2, "fail", error=DENIED),
        Step(12, "look", stalled={TIER: "refused", DLQ: "TopicAuthorization"}),
        Step(13, "end", topic=TIER, stalled={DLQ: "WRITE and DESCRIBE"}),
        Step(14, "end", stalled={}),
    ],
    "a new streak after recovery starts afresh": [
        Step(0, "fail"), Step(20, "end", stalled={}), Step(21, "fail"),
        Step(30, "look", stalled={}), Step(31, "look", stalled={DLQ: "refused"}),
    ],
}


@pytest.mark.parametrize("steps", list(CASES.values()), ids=list(CASES))
def test_the_produce_stall_bookkeeping(steps: list[Step]) -> None:
    clock = Clock()
    watch = WriteWatch(StallWatch("producer", 10.0, clock=clock, noun="producer"))
    for step in steps:
        clock.now = 1000.0 + step.at
        if step.op == "fail":
            watch.failed(step.topic, step.error, again=False)
        elif step.op == "again":
            watch.failed(step.topic, step.error, again=True)
        elif step.op == "end":
            watch.ended(step.topic)
        if step.stalled is not None:
            stalls = watch.watch.stalls()
            assert {p.topic: p.reason for p in stalls}.keys() == step.stalled.keys(), step
            for problem in stalls:
                assert step.stalled[str(problem.topic)] in problem.reason, step
                assert problem.kind == "produce" and problem.consumer == "producer"


def test_a_produce_stall_in_readiness_words() -> None:
    clock = Clock()
    watch = WriteWatch(StallWatch("producer", 1.0, clock=clock, noun="producer"))
    watch.failed(DLQ, MessageSizeTooLargeError("too big"), again=False)
    clock.now += 2
    [problem] = watch.watch.stalls()
    assert summary([problem]).startswith(
        "producer: produce to hookd.dlq: not retriable: [Error 10] MessageSizeTooLargeError: "
        "too big; the record is larger than the topic takes: raise the topic's "
        "max.message.bytes")
    said = problem.as_dict()
    assert said["producer"] == "producer" and said["topic"] == DLQ and "consumer" not in said


@pytest.mark.parametrize(("error", "said"), [
    (DENIED, "not retriable: [Error 29] TopicAuthorizationFailedError; hookd is not "
             "authorized to write to the topic: grant its principal WRITE and DESCRIBE on it"),
    (MessageSizeTooLargeError("1 MB"), "not retriable: [Error 10] MessageSizeTooLargeError: "
                                       "1 MB; the record is larger than the topic takes"),
    (RecordTooLargeError(), "not retriable: RecordTooLargeError; the record is larger"),
    (MessageSizeTooLargeError("The message is 75784 bytes when serialized which is larger "
                              "than the maximum request size you have configured with the "
                              "max_request_size configuration"),
     "not retriable: [Error 10] MessageSizeTooLargeError: The message is 75784 bytes when "
     "serialized which is larger than the maximum request size you have configured with the "
     "max_request_size configuration; the record is larger than kafka.max_request_size (a "
     "dead letter's key is never cut): raise it"),
    (KafkaConnectionError("refused"), "KafkaConnectionError: refused"),
    (KafkaTimeoutError(), "KafkaTimeoutError"),
    (NotEnoughReplicasError(), "[Error 19] NotEnoughReplicasError"),
    (ConnectionResetError("reset by peer"), "ConnectionResetError: reset by peer"),
])
def test_explain_names_what_no_retry_cures_and_what_to_do(error: Exception,
                                                          said: str) -> None:
    assert explain(error).startswith(said)
    assert explain(error).startswith("not retriable") == said.startswith("not retriable")


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writes, "FIRST_PAUSE", 0.001)


async def test_until_acked_tells_each_failure_and_the_end_of_the_write() -> None:
    watch = WriteWatch(StallWatch("producer", 0.0, noun="producer"))
    tries: list[int] = []

    async def produce() -> str:
        tries.append(watch.failing(DLQ))
        if len(tries) <= 3:
            raise DENIED
        return "acked"

    with structlog.testing.capture_logs() as logs:
        assert await until_acked(produce, "dead-letter", DLQ, watch) == "acked"
    assert tries == [0, 1, 1, 1]  # one write failing, however often it is tried
    assert watch.failing(DLQ) == 0 and not watch.watch.is_open(DLQ)
    failed = [e for e in logs if e["event"] == "dead-letter publish failed, retrying"]
    assert len(failed) == 3 and failed[0]["topic"] == DLQ
    assert failed[0]["error"].startswith("not retriable: [Error 29]")
    said = [e["event"] for e in logs if "producer" in e["event"]]  # stalled at once (0 s)
    assert said[0] == "producer failing" and said[-1] == "producer recovered"
    assert set(said[1:-1]) == {"producer stalled"}


async def test_a_failing_write_given_up_ends_its_part_of_the_streak() -> None:
    watch = WriteWatch(StallWatch("producer", 0.0, noun="producer"))

    async def refused() -> None:
        raise REFUSED

    task = asyncio.create_task(until_acked(refused, "park", TIER, watch))
    while not watch.failing(TIER):
        await asyncio.sleep(0)
    assert watch.watch.stalls()[0].topic == TIER
    task.cancel()  # shutdown, or a revocation: the record comes again, from the source
    with pytest.raises(asyncio.CancelledError):
        await task
    assert watch.failing(TIER) == 0 and watch.watch.stalls() == []


async def test_what_cannot_be_written_at_all_is_not_tried_again_nor_a_stall() -> None:
    watch = WriteWatch(StallWatch("producer", 0.0, noun="producer"))
    tries = 0

    async def too_large() -> None:
        nonlocal tries
        tries += 1
        raise TooLargeToPark("2 MB")

    with pytest.raises(TooLargeToPark):
        await until_acked(too_large, "park", TIER, watch)
    assert tries == 1 and watch.watch.stalls() == [] and watch.failing(TIER) == 0


async def test_without_a_watch_writes_are_still_tried_until_acked() -> None:
    results = iter([REFUSED, REFUSED, None])

    async def produce() -> int:
        result = next(results)
        if result is not None:
            raise result
        return 7

    assert await until_acked(produce, "park", TIER) == 7
