"""Reading records so that a batch that cannot be read stops its own partition only.

aiokafka decodes a fetched batch while handing its records out: a batch in a codec the
process cannot decode, or a corrupt one, raises out of `getmany` *after* the records of
the other partitions (and of earlier batches of the same partition) were taken off its
buffers. Those records are then never handed out again: one unreadable batch lost its
neighbours' records and, fetched again and again, stopped every partition.

So records are taken one partition per call, and a partition that raises is read again
from where it stood, one record per call, up to the first offset that cannot be read.
There it is paused, tried again every `retry_after`, and reported to the StallWatch
(with its offset) until it reads again; the other partitions go on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from hookd.kafka.stalls import StallWatch

SUSPECT_FOR = 5.0  # after a failed multi-partition fetch: read partition by partition only
POSITION_TIMEOUT = 1.0


def records_key(tp: TopicPartition) -> str:
    return f"records {tp.topic}-{tp.partition}"


def reason_of(exc: BaseException) -> str:
    """`Name: message` (aiokafka's errors already start their text with their name)."""
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}" if text else name


@dataclass(slots=True)
class _Careful:
    """A partition read one record per call since it raised."""

    offset: int | None  # where it stood when it last raised (exact once read one by one)
    taken: int = 0  # records taken since it last raised


class PartitionReader:
    """`read()` is `getmany()`, but each partition stands alone (see the module's text).
    `hold(tp, until)`: pause tp until that epoch time (the consume loop resumes it)."""

    def __init__(self, consumer: Any, watch: StallWatch,
                 hold: Callable[[TopicPartition, float], None], retry_after: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.consumer, self.watch, self.hold = consumer, watch, hold
        self.retry_after, self.clock = retry_after, clock
        self._careful: dict[TopicPartition, _Careful] = {}
        self._suspect_until = 0.0
        self._turn = 0  # which partition is read first: each in turn, so none starves

    async def read(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        """Up to max_records buffered records; if none, wait up to timeout_ms for one."""
        readable = list(self.consumer.assignment() - self.consumer.paused())
        out: dict[TopicPartition, list[Any]] = {}
        if readable:
            self._turn = (self._turn + 1) % len(readable)
            budget = max_records
            for tp in readable[self._turn:] + readable[:self._turn]:
                got = await self._read_one(tp, budget)
                if got:
                    out[tp] = got
                    budget -= len(got)
                    if budget <= 0:
                        break
        if out:
            return out
        if self.clock() < self._suspect_until:  # let the next fetches land, read them apart
            await asyncio.sleep(min(0.05, timeout_ms / 1000))
            return {}
        try:
            # One record at most: this call spans partitions, and one that cannot be read
            # raises before a record of another is taken (none is lost).
            out = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=1)
        except Exception:
            self._suspect_until = self.clock() + SUSPECT_FOR
            raise
        for tp, records in out.items():
            self._taken(tp, records)
        return out

    async def _read_one(self, tp: TopicPartition, budget: int) -> list[Any]:
        careful = self._careful.get(tp)
        got: list[Any] = []
        try:
            if careful is None:
                got = (await self.consumer.getmany(tp, timeout_ms=0, max_records=budget)
                       ).get(tp, [])
            else:
                while len(got) < budget:
                    one = (await self.consumer.getmany(tp, timeout_ms=0, max_records=1)
                           ).get(tp)
                    if not one:
                        break
                    got.extend(one)
        except Exception as exc:
            await self._unreadable(tp, exc, careful is not None)
            if careful is not None:
                careful.taken = 0
            return got  # (read one by one: these were handed out, and are kept)
        if careful is not None:
            if got:
                careful.taken += len(got)
            elif careful.taken:  # read to the end of what was fetched, without a failure
                del self._careful[tp]
                self.watch.ok(records_key(tp))
        return got

    def _taken(self, tp: TopicPartition, records: list[Any]) -> None:
        careful = self._careful.get(tp)
        if careful is not None and records:
            careful.taken += len(records)

    async def _unreadable(self, tp: TopicPartition, exc: Exception, careful: bool) -> None:
        offset = await self._position(tp)
        if offset is not None:  # drop the half-read fetch: its records come again
            self.consumer.seek(tp, offset)
        if careful:  # read one by one up to here: `offset` is the first that cannot be read
            self.consumer.pause(tp)
            self.hold(tp, self.clock() + self.retry_after)
        state = self._careful.setdefault(tp, _Careful(offset))
        state.offset = offset
        self.watch.failed(records_key(tp), "records", reason_of(exc),
                          partition=f"{tp.topic}-{tp.partition}", offset=offset)

    async def _position(self, tp: TopicPartition) -> int | None:
        try:
            async with asyncio.timeout(POSITION_TIMEOUT):
                position: int = await self.consumer.position(tp)
                return position
        except Exception:  # not assigned any more, or no position yet: nothing to rewind
            return None

    def forget(self, revoked: set[TopicPartition]) -> None:
        """Revoked partitions: their problems go with them to their next owner."""
        for tp in revoked:
            if self._careful.pop(tp, None) is not None:
                self.watch.ok(records_key(tp))
