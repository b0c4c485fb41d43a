"""ConsumerLoop against a fake consumer: commits go on beside the fetching, never overlap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import structlog.testing
from aiokafka import TopicPartition

from hookd.config import ConsumerTuning
from hookd.kafka.consumer import ConsumerLoop, RecordAges

TP = TopicPartition("cc.events", 0)


class SlowCommits:
    """A consumer whose fetches hand out the batches given, and whose commits wait until
    released (one `release.set()` lets every commit waiting through)."""

    def __init__(self, batches: list[list[int]]) -> None:
        self.batches = batches
        self.release = asyncio.Event()
        self.committed: list[dict[TopicPartition, int]] = []
        self.in_commit = 0
        self.most_in_commit = 0
        self.commit_started = asyncio.Event()

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def pause(self, *_tps: TopicPartition) -> None:
        pass

    def resume(self, *_tps: TopicPartition) -> None:
        pass

    def paused(self) -> set[TopicPartition]:
        return set()

    async def getmany(self, *_tps: TopicPartition, timeout_ms: int,
                      max_records: int) -> dict[TopicPartition, Any]:
        if not self.batches:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        offsets = self.batches.pop(0)
        return {TP: [SimpleNamespace(offset=o, timestamp=None) for o in offsets]}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.in_commit += 1
        self.most_in_commit = max(self.most_in_commit, self.in_commit)
        self.commit_started.set()
        try:
            await self.release.wait()
            self.committed.append(dict(offsets))
        finally:
            self.in_commit -= 1


def _loop(consumer: SlowCommits, taken: list[int]) -> ConsumerLoop:
    def submit(record: Any, done: Callable[[], None]) -> None:
        taken.append(record.offset)
        done()  # finished at once: each record is committable as soon as it is taken

    tuning = ConsumerTuning(commit_interval="0s")  # a commit is due after every fetch
    return ConsumerLoop("source", consumer, submit, tuning, lambda: 0, lambda: 100)


async def _until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not check():
            await asyncio.sleep(0.001)


async def test_records_keep_flowing_while_a_commit_is_in_flight() -> None:
    consumer = SlowCommits([[0, 1], [2, 3], [4]])
    taken: list[int] = []
    loop, stop = _loop(consumer, taken), asyncio.Event()
    running = asyncio.create_task(loop.run(stop))
    await consumer.commit_started.wait()  # the first commit hangs...
    await _until(lambda: taken == [0, 1, 2, 3, 4])  # ...and the later batches went on
    assert consumer.committed == []
    consumer.release.set()
    await _until(lambda: bool(consumer.committed) and consumer.committed[-1] == {TP: 5})
    stop.set()
    await asyncio.wait_for(running, 5)
    assert consumer.most_in_commit == 1  # one background commit at a time


async def test_a_commit_asked_during_another_waits_and_commits_the_newest() -> None:
    consumer = SlowCommits([[0, 1]])
    taken: list[int] = []
    loop, stop = _loop(consumer, taken), asyncio.Event()
    running = asyncio.create_task(loop.run(stop))
    await consumer.commit_started.wait()  # the background commit of offsets 0-1 hangs
    stop.set()
    await asyncio.wait_for(running, 5)
    ticket = loop.tracker.start(TP, 2)  # finished after that commit began
    loop.tracker.finish(ticket)
    final = asyncio.create_task(loop.commit())  # what shutdown and a revocation do
    await asyncio.sleep(0.01)
    assert consumer.in_commit == 1  # it waits for the one in flight
    consumer.release.set()
    await final
    assert consumer.committed == [{TP: 2}, {TP: 3}]  # in order, the newest last
    assert consumer.most_in_commit == 1


async def test_a_commit_unanswered_for_the_session_timeout_is_given_up_and_said() -> None:
    """aiokafka retries a commit while the coordinator is unknown, without end: after
    session_timeout the loop gives it up, says so (a commit failure, which becomes a stall)
    and the next commit is not held behind it."""
    consumer = SlowCommits([[0, 1]])
    tuning = ConsumerTuning(commit_interval="0s", session_timeout="0.05s")
    loop = ConsumerLoop("source", consumer, lambda r, done: done(), tuning,
                        lambda: 0, lambda: 100)
    loop.tracker.finish(loop.tracker.start(TP, 0))
    with structlog.testing.capture_logs() as lines:
        await asyncio.wait_for(loop.commit(), 5)  # returns: given up, not hung
    assert consumer.committed == [] and consumer.in_commit == 0
    [line] = [line for line in lines if line["event"].startswith("commit failed")]
    assert line["log_level"] == "warning"
    assert line["error"] == "the broker did not answer a commit within 0.05s"
    assert loop.watch.is_open("commit")
    consumer.release.set()  # the broker answers again: the next commit goes through
    await asyncio.wait_for(loop.commit(), 5)
    assert consumer.committed == [{TP: 1}] and not loop.watch.is_open("commit")


async def test_a_failing_commit_in_the_background_is_logged() -> None:
    consumer = SlowCommits([[0]])

    async def broken(_offsets: dict[TopicPartition, int]) -> None:
        raise RuntimeError("a bug")

    consumer.commit = broken  # type: ignore[method-assign]
    loop, stop = _loop(consumer, []), asyncio.Event()
    with structlog.testing.capture_logs() as lines:
        running = asyncio.create_task(loop.run(stop))
        await _until(lambda: loop._committing is not None and loop._committing.done())
        stop.set()
        await asyncio.wait_for(running, 5)
    failed = [line for line in lines if line["event"].startswith("commit failed unexpectedly")]
    assert failed and failed[0]["log_level"] == "error"
    assert failed[0]["error"] == "RuntimeError: a bug"


def test_record_ages_summary_over_the_window() -> None:
    ages = RecordAges(size=100)
    assert ages.summary() == {"records": 0}
    for age in range(1, 101):  # 1..100 ms old
        ages.add(10_000.0, 10_000 - age)
    assert ages.summary() == {"records": 100, "p50": 50.0, "p99": 99.0, "max": 100.0}


def test_record_ages_keep_the_last_records_only() -> None:
    ages = RecordAges(size=4)
    for age in (900, 900, 900, 900, 1, 2, 3):  # the first three fall out of the window
        ages.add(5_000.0, 5_000 - age)
    assert ages.summary() == {"records": 4, "p50": 2.0, "p99": 900.0, "max": 900.0}
    assert ages.taken == 7


def test_record_ages_skip_missing_timestamps_and_floor_skew_at_zero() -> None:
    ages = RecordAges(size=8)
    ages.add(1_000.0, None)
    ages.add(1_000.0, -1)  # Kafka's "no timestamp"
    assert ages.summary() == {"records": 0}
    ages.add(1_000.0, 1_250)  # the producer's clock is ahead of ours
    assert ages.summary() == {"records": 1, "p50": 0.0, "p99": 0.0, "max": 0.0}


async def test_the_loop_notes_the_age_of_each_record_it_takes() -> None:
    loop, now_ms = _loop(SlowCommits([]), []), time.time() * 1000
    loop.ages = RecordAges()
    records = [SimpleNamespace(offset=0, timestamp=int(now_ms) - 5_000),
               SimpleNamespace(offset=1, timestamp=int(now_ms) - 7_000)]
    loop._take(TP, records)
    summary = loop.ages.summary()
    assert summary["records"] == 2
    assert 5_000 <= summary["p50"] < 6_000 and 7_000 <= summary["max"] < 8_000
    loop.ages = None  # a loop that notes no ages (the retry topics') takes records all the same
    loop._take(TP, [SimpleNamespace(offset=2, timestamp=int(now_ms))])
    assert loop.fetched[TP] == 3


class Held:
    """A retry topic's consumer: one partition, whose high watermark is what its last
    fetch said, and whose end offset the broker gives on request (or fails to)."""

    def __init__(self, highwater: int, end: int) -> None:
        self.high, self.end, self.fail, self.hang = highwater, end, False, False
        self.held: set[TopicPartition] = set()
        self.asked: list[list[TopicPartition]] = []

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def seek(self, _tp: TopicPartition, _offset: int) -> None:
        pass

    def pause(self, *tps: TopicPartition) -> None:
        self.held.update(tps)

    def paused(self) -> set[TopicPartition]:
        return set(self.held)

    def highwater(self, _tp: TopicPartition) -> int:
        return self.high

    async def getmany(self, *_tps: TopicPartition, timeout_ms: int,
                      max_records: int) -> dict[TopicPartition, Any]:
        await asyncio.sleep(0.001)
        return {} if self.held else {TP: [SimpleNamespace(offset=0, timestamp=None)]}

    async def commit(self, _offsets: dict[TopicPartition, int]) -> None:
        pass

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked.append(tps)
        if self.hang:
            await asyncio.Event().wait()
        if self.fail:
            raise ConnectionError("broker gone")
        return {tp: self.end for tp in tps}


def _retry_loop(consumer: Held, tuning: ConsumerTuning | None = None) -> ConsumerLoop:
    def submit(_record: Any, done: Callable[[], None]) -> None:
        done()

    due_at = time.time() + 30  # every record is parked for 30 s more
    return ConsumerLoop("retry", consumer, submit, tuning or ConsumerTuning(), lambda: 0,
                        lambda: 100, due=lambda _record: due_at)


async def test_a_paused_partition_lag_follows_its_end_offset_not_its_last_fetch() -> None:
    """A retry partition held at a record not due is not fetched while it waits: records
    parked meanwhile only show in its end offset, asked for now and then."""
    consumer = Held(highwater=3, end=3)
    loop = _retry_loop(consumer)
    loop._take(TP, [SimpleNamespace(offset=1, timestamp=None)])  # held at offset 1
    assert consumer.held == {TP}
    assert loop.lag() == {"cc.events-0": 2}  # the very first record held counts too
    consumer.end = 9  # six more parked since
    assert loop.lag() == {"cc.events-0": 2}  # (nothing asked yet)
    await loop._ask_ends()
    assert consumer.asked == [[TP]]
    assert loop.lag() == {"cc.events-0": 8}
    consumer.fail, consumer.end = True, 12
    await loop._ask_ends()  # a failed request keeps what was last known
    assert loop.lag() == {"cc.events-0": 8}
    consumer.high = 15  # a fetch after resuming saw more than the last ask: the greater
    assert loop.lag() == {"cc.events-0": 14}


async def test_end_offsets_are_asked_only_for_paused_partitions() -> None:
    consumer = Held(highwater=5, end=7)
    loop = _retry_loop(consumer)
    await loop._ask_ends()
    assert consumer.asked == []  # nothing paused: no request
    loop._take(TP, [SimpleNamespace(offset=4, timestamp=None)])
    await loop.revoked({TP})
    assert loop.lag() == {}  # a revoked partition is forgotten, its end offset with it


async def test_the_loop_asks_for_end_offsets_as_it_commits_and_stops_asking_when_it_ends() -> None:
    consumer = Held(highwater=1, end=4)
    consumer.hang = True  # the broker never answers: stopping must not wait for it
    loop, stop = _retry_loop(consumer, ConsumerTuning(commit_interval="0s")), asyncio.Event()
    running = asyncio.create_task(loop.run(stop))
    await _until(lambda: bool(consumer.asked))  # the record at offset 0 is held: asked
    assert consumer.asked[0] == [TP]
    stop.set()
    await asyncio.wait_for(running, 5)
    asking = loop._asking
    assert asking is not None
    await asyncio.sleep(0)
    assert asking.cancelled()


async def test_revoked_abandons_what_is_still_in_flight_after_the_grace_then_commits() -> None:
    """Offsets 0..2 taken: 0 finishes, 1 and 2 are still in flight when `revoke_grace`
    ends: they are abandoned (so nothing of them is sent after the revocation), and the
    commit holds only the finished prefix."""
    consumer = SlowCommits([[0, 1, 2]])
    consumer.release.set()
    dones: dict[int, Callable[[], None]] = {}
    abandoned: list[set[TopicPartition]] = []

    def submit(record: Any, done: Callable[[], None]) -> None:
        dones[record.offset] = done

    async def abandon(tps: set[TopicPartition]) -> int:
        abandoned.append(set(tps))
        return 2

    loop = ConsumerLoop("source", consumer, submit,
                        ConsumerTuning(commit_interval="1h", revoke_grace="100ms"),
                        lambda: 0, lambda: 100, abandon=abandon)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await _until(lambda: len(dones) == 3)
    dones[0]()
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        await loop.revoked({TP})
    assert time.monotonic() - started >= 0.1  # the grace first
    assert abandoned == [{TP}]
    assert consumer.committed == [{TP: 1}]
    said = [e for e in logs if "abandoned" in e["event"]]
    assert said and said[0]["deliveries"] == 2 and said[0]["records"] == 2
    stop.set()
    await task


async def test_revoked_abandons_nothing_when_all_finished_within_the_grace() -> None:
    consumer = SlowCommits([[0]])
    consumer.release.set()
    abandoned: list[set[TopicPartition]] = []

    async def abandon(tps: set[TopicPartition]) -> int:
        abandoned.append(set(tps))
        return 0

    loop = ConsumerLoop("source", consumer, lambda record, done: done(),
                        ConsumerTuning(commit_interval="1h", revoke_grace="5s"),
                        lambda: 0, lambda: 100, abandon=abandon)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await _until(lambda: TP in loop.fetched)
    started = time.monotonic()
    await loop.revoked({TP})
    assert time.monotonic() - started < 1.0  # no waiting out the grace
    assert abandoned == []
    assert consumer.committed == [{TP: 1}]
    stop.set()
    await task
