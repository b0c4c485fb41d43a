"""PartitionReader against a consumer that fails as aiokafka does: a batch that cannot be
decoded raises out of `getmany` after the records of earlier partitions (and of earlier
batches of its own) were taken off the buffers, and those are then lost unless the
partition is sought back."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import UnsupportedCodecError

from hookd.kafka.fetching import PartitionReader, reason_of
from hookd.kafka.stalls import StallWatch

P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)


class LossyConsumer:
    """Each partition a log of offsets; those in `bad` raise when read. As in aiokafka, a
    call that raises leaves the position where the call began but the read cursor past the
    records it had taken: the next call moves the position to the cursor (they are lost)."""

    def __init__(self, logs: dict[TopicPartition, int], bad: set[tuple[TopicPartition, int]]):
        self.ends, self.bad = logs, bad
        self.pos = dict.fromkeys(logs, 0)
        self.cursor: dict[TopicPartition, int] = {}  # after a failed read
        self.held: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return set(self.ends)

    def paused(self) -> set[TopicPartition]:
        return set(self.held)

    def pause(self, *tps: TopicPartition) -> None:
        self.held.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.held.difference_update(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.pos[tp] = offset
        self.cursor.pop(tp, None)

    async def position(self, tp: TopicPartition) -> int:
        return self.pos[tp]

    def _read(self, tp: TopicPartition, n: int) -> list[Any]:
        if tp in self.cursor:  # the dead iterator: its records are gone
            self.pos[tp] = self.cursor.pop(tp)
            return []
        out, at = [], self.pos[tp]
        while at < self.ends[tp] and len(out) < n:
            if (tp, at) in self.bad:
                self.cursor[tp] = at
                raise UnsupportedCodecError("Libraries for snappy compression codec not found")
            out.append(SimpleNamespace(offset=at, partition=tp.partition))
            at += 1
        self.pos[tp] = at
        return out

    async def getmany(self, *tps: TopicPartition, timeout_ms: int,
                      max_records: int) -> dict[TopicPartition, list[Any]]:
        out = {}
        for tp in tps or sorted(self.ends, key=lambda t: t.partition):
            if tp in self.held or max_records <= 0:
                continue
            got = self._read(tp, max_records)
            if got:
                out[tp], max_records = got, max_records - len(got)
        return out


def _reader(consumer: LossyConsumer, watch: StallWatch,
            holds: dict[TopicPartition, float]) -> PartitionReader:
    return PartitionReader(consumer, watch, holds.__setitem__, retry_after=5.0,
                           clock=lambda: 100.0)


async def _drain(reader: PartitionReader, turns: int = 30) -> list[tuple[int, int]]:
    taken = []
    for _ in range(turns):
        for tp, records in (await reader.read(0, 500)).items():
            taken += [(tp.partition, r.offset) for r in records]
    return taken


async def test_an_unreadable_batch_stops_its_partition_only_and_loses_nothing() -> None:
    bad = {(P0, o) for o in range(3, 8)}  # one batch, offsets 3-7, after 0-2 in the buffer
    consumer = LossyConsumer({P0: 10, P1: 5}, bad)
    watch, holds = StallWatch("source", 30.0, clock=lambda: 100.0), {}
    reader = _reader(consumer, watch, holds)
    taken = await _drain(reader)
    assert sorted(taken) == [(0, 0), (0, 1), (0, 2)] + [(1, o) for o in range(5)]
    assert consumer.held == {P0} and holds == {P0: 105.0}  # tried again in retry_after
    assert consumer.pos[P0] == 3  # where it stands: the first offset that cannot be read
    (problem,) = watch._open.values()
    assert (problem.kind, problem.partition, problem.offset) == ("records", "t-0", 3)
    assert "snappy" in problem.reason

    consumer.bad.clear()  # the codec installed, say; the loop resumes the partition
    consumer.resume(P0)
    taken += await _drain(reader)
    assert sorted(taken) == sorted([(0, o) for o in range(10)] + [(1, o) for o in range(5)])
    assert len(taken) == len(set(taken))  # none twice
    assert not watch._open  # the streak ended


async def test_a_multi_partition_wait_that_raises_loses_no_record() -> None:
    """Nothing buffered at first: the wait call (across partitions) meets the bad batch."""
    consumer = LossyConsumer({P0: 4, P1: 3}, {(P0, 0)})
    watch, holds = StallWatch("source", 30.0, clock=lambda: 100.0), {}
    reader = _reader(consumer, watch, holds)
    taken = await _drain(reader)
    assert sorted(taken) == [(1, 0), (1, 1), (1, 2)]
    assert consumer.held == {P0} and consumer.pos[P0] == 0
    assert watch._open["records t-0"].offset == 0


async def test_the_plain_path_reads_every_partition_in_turn() -> None:
    consumer = LossyConsumer({P0: 600, P1: 600}, set())
    watch = StallWatch("source", 30.0)
    reader = _reader(consumer, watch, {})
    first = await reader.read(0, 500)
    second = await reader.read(0, 500)
    assert sum(map(len, first.values())) == sum(map(len, second.values())) == 500
    assert set(first) | set(second) == {P0, P1}  # neither starves
    assert not watch._open


def test_a_reason_names_the_error_once() -> None:
    assert reason_of(UnsupportedCodecError("no lz4")) == (  # its text starts with its name
        "UnsupportedCodecError: no lz4")
    assert reason_of(ValueError("bad")) == "ValueError: bad"
    assert reason_of(TimeoutError()) == "TimeoutError"
