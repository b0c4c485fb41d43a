"""Records for retry and dead-letter topics, written in batches; each caller awaits its own
record's acknowledgement.

aiokafka's `send_and_wait` cost about 63 µs of CPU per record here with 1,000 records
waiting, and 730 µs each with 5,000: enough to make an open circuit, which parks every
delivery to its endpoint, slow down the healthy hooks. Appending to a batch per (topic,
partition), sent with `send_batch` a couple of milliseconds later, costs 24 and 35 µs
(`python -m bench.batching`, a task per record in both). Records are placed by the
producer's default partitioner (murmur2 of the key, as Kafka's own clients do), so a key
keeps its partition.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import Any

from aiokafka.partitioner import DefaultPartitioner, murmur2

from hookd.loops import RunningLoop

Headers = Sequence[tuple[str, bytes]]
# Bigger records go one by one through send_and_wait, which checks them against
# max_request_size (a batch would take one of any size, and the broker refuse it whole).
ALONE_FROM = 8 * 1024


@functools.lru_cache(maxsize=4096)
def key_hash(key: bytes) -> int:
    """The default partitioner's hash of a key (aiokafka's murmur2, in Python: ~10 µs for a
    36-byte id), kept for the keys seen last: an event's outcome records (one per hook)
    share their key, as a key's parked deliveries and dead letters do."""
    return int(murmur2(key)) & 0x7FFFFFFF


class _Open:
    """A batch being filled, and the futures of the callers whose records are in it."""

    __slots__ = ("batch", "waiters")

    def __init__(self, batch: Any) -> None:
        self.batch = batch
        self.waiters: list[asyncio.Future[None]] = []


class BatchedProducer:
    """`send_and_wait(topic, value, key=, headers=)` like AIOKafkaProducer's, batched."""

    def __init__(self, producer: Any, linger: float = 0.002) -> None:
        self.producer = producer
        self.linger = linger
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        self._open: dict[tuple[str, int], _Open] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        self._loop = RunningLoop()

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None,
                            headers: Headers | None = None) -> None:
        """Returns once the broker acknowledged the record; raises what sending raised."""
        if len(value) + len(key or b"") >= ALONE_FROM:
            await self.producer.send_and_wait(topic, value, key=key, headers=headers)
            return
        partitions = self._partitions.get(topic)
        if partitions is None:
            found = await self.producer.partitions_for(topic)
            partitions = self._partitions[topic] = sorted(found)
        partition = (self._partitioner(None, partitions, partitions) if key is None
                     else partitions[key_hash(key) % len(partitions)])  # as the partitioner
        slot = (topic, partition)
        loop = self._loop()
        waiter: asyncio.Future[None] = loop.create_future()
        current = self._open.get(slot)
        if current is None or not self._append(current, key, value, headers):
            if current is not None:  # full: off it goes, and a new one is begun
                self._send(slot, self._open.pop(slot))
            current = self._open[slot] = _Open(self.producer.create_batch())
            if not self._append(current, key, value, headers):  # pragma: no cover
                raise RuntimeError("an empty batch refused a record under ALONE_FROM")
        current.waiters.append(waiter)
        if self._timer is None:
            self._timer = loop.call_later(self.linger, self._flush)
        await waiter

    @staticmethod
    def _append(current: _Open, key: bytes | None, value: bytes, headers: Headers | None,
                ) -> bool:
        return current.batch.append(key=key, value=value, timestamp=None,
                                    headers=list(headers or ())) is not None

    def _flush(self) -> None:
        self._timer = None
        batches, self._open = self._open, {}
        for slot, current in batches.items():
            self._send(slot, current)

    def _send(self, slot: tuple[str, int], current: _Open) -> None:
        task = self._loop().create_task(self._deliver(slot, current))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _deliver(self, slot: tuple[str, int], current: _Open) -> None:
        topic, partition = slot
        try:
            current.batch.close()
            acked = await self.producer.send_batch(current.batch, topic, partition=partition)
            await acked
        except BaseException as exc:
            self._partitions.pop(topic, None)  # the topic may have changed: ask again
            for waiter in current.waiters:
                if not waiter.done():
                    waiter.set_exception(exc if isinstance(exc, Exception)
                                         else RuntimeError("batch send cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for waiter in current.waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def flush(self) -> None:
        """Send what is open now and wait for it (shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
        self._flush()
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
