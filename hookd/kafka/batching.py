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
import struct
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from hookd.loops import RunningLoop

Headers = Sequence[tuple[str, bytes]]
Acked = Callable[[BaseException | None], None]  # told once: None, acked; else what failed
Waiter = asyncio.Future[None] | Acked
# Bigger records go one by one through send_and_wait, which checks them against
# max_request_size (a batch would take one of any size, and the broker refuse it whole).
ALONE_FROM = 8 * 1024


@functools.lru_cache(maxsize=4096)
def key_hash(key: bytes) -> int:
    """The default partitioner's hash of a key, kept for the keys seen last: an event's
    outcome records (one per hook) share their key, as a key's parked deliveries and dead
    letters do."""
    return murmur2(key) & 0x7FFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 as Kafka's clients place a key (Java's `Utils.murmur2`, seed
    0x9747B28C): the value of aiokafka's `murmur2`, in a third of its steps.

    By hand because no maintained library has it in C (mmh3 is MurmurHash3; Kafka's
    clients all carry their own), and aiokafka's takes each word byte by byte: ~900
    bytecodes for a 36-byte event id, a third of a delivery's own Python work when the
    delivery log is on (one new key per event). Here the words are read in one `unpack`
    and each mixed in three lines. tests/unit/kafka/test_batching.py holds it to aiokafka's
    partitioner over 3,000 random keys of every length up to 63."""
    length = len(data)
    h = 0x9747B28C ^ length
    whole = length & ~3
    for k in struct.unpack_from(f"<{length >> 2}I", data):  # (m = 0x5BD1E995, as literals)
        k = (k * 0x5BD1E995) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * 0x5BD1E995) & 0xFFFFFFFF
        h = ((h * 0x5BD1E995) & 0xFFFFFFFF) ^ k
    left = length - whole
    if left:
        if left >= 3:
            h ^= data[whole + 2] << 16
        if left >= 2:
            h ^= data[whole + 1] << 8
        h = ((h ^ data[whole]) * 0x5BD1E995) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 0x5BD1E995) & 0xFFFFFFFF
    return h ^ (h >> 15)


class _Open:
    """A batch being filled, and the futures of the callers whose records are in it."""

    __slots__ = ("batch", "waiters")

    def __init__(self, batch: Any) -> None:
        self.batch = batch
        self.waiters: list[Waiter] = []


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
        waiter: asyncio.Future[None] = self._loop().create_future()
        self._place(topic, partitions, value, key, headers).append(waiter)
        await waiter

    def append(self, topic: str, value: bytes, key: bytes | None, headers: Headers | None,
               acked: Acked) -> bool:
        """`send_and_wait` without a coroutine or a future of its own: the record joins its
        batch now, and `acked(None)` is called once the broker has acked it (`acked(exc)`:
        the batch failed, try again). For a caller with many records in flight (the
        delivery log: one per delivery), a callback costs a fraction of a task awaiting a
        future. False, nothing done: it cannot join a batch now (too large to batch, or the
        topic's partitions are not known yet): `send_and_wait` it."""
        if len(value) + len(key or b"") >= ALONE_FROM:
            return False
        partitions = self._partitions.get(topic)
        if partitions is None:
            return False
        self._place(topic, partitions, value, key, headers).append(acked)
        return True

    def _place(self, topic: str, partitions: list[int], value: bytes, key: bytes | None,
               headers: Headers | None) -> list[Waiter]:
        """The record appended to its partition's open batch (one begun if need be): the
        list of that batch's waiters, for the caller to join."""
        partition = (self._partitioner(None, partitions, partitions) if key is None
                     else partitions[key_hash(key) % len(partitions)])  # as the partitioner
        slot = (topic, partition)
        current = self._open.get(slot)
        if current is None or not self._append(current, key, value, headers):
            if current is not None:  # full: off it goes, and a new one is begun
                self._send(slot, self._open.pop(slot))
            current = self._open[slot] = _Open(self.producer.create_batch())
            if not self._append(current, key, value, headers):  # pragma: no cover
                raise RuntimeError("an empty batch refused a record under ALONE_FROM")
        if self._timer is None:
            self._timer = self._loop().call_later(self.linger, self._flush)
        return current.waiters

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
            _tell(current.waiters, exc if isinstance(exc, Exception)
                  else RuntimeError("batch send cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        _tell(current.waiters, None)

    async def flush(self) -> None:
        """Send what is open now and wait for it (shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
        self._flush()
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)


def _tell(waiters: list[Waiter], error: Exception | None) -> None:
    """Each caller of a batch: acked (`error` None) or not. A callback that raises is a
    bug, said through the loop's exception handler: it must not keep the batch's other
    callers from being told."""
    for waiter in waiters:
        if isinstance(waiter, asyncio.Future):
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
            continue
        try:
            waiter(error)
        except Exception as exc:
            asyncio.get_running_loop().call_exception_handler(
                {"message": "a batch's ack callback raised", "exception": exc})
