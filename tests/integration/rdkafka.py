"""Records written by a foreign client: librdkafka (confluent-kafka), as the producers of
issue 17 write them, and a look at the batches they put on the wire.

aiokafka wrote every record of the other integration tests; librdkafka batches, compresses
and frames on its own (snappy, lz4, zstd through its bundled libraries), so records it
writes are what a consumer of real producers meets.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiokafka.consumer.fetcher as fetcher
import confluent_kafka

from tests.integration.broker import ON_KAFKA, consume_all

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
_CODEC_OF_ID = dict(enumerate(CODECS))  # the attribute bits of a record batch (v2)

Placed = tuple[int, int]  # (partition, offset), from librdkafka's delivery report


@dataclass(frozen=True)
class RdRecord:
    value: bytes | None
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int | None = None  # None: librdkafka's partitioner picks


@dataclass(frozen=True)
class Batch:
    """A record batch as fetched: its codec (from the batch attributes) and its size."""

    base_offset: int
    codec: str
    records: int


def produce_sync(bootstrap: str, topic: str, records: Sequence[RdRecord], *,
                 compression: str = "none", linger_ms: int = 100,
                 timeout: float = 15.0) -> list[Placed]:
    """Produce every record through one librdkafka producer and flush; returns where each
    went. All produce() calls come before the flush and `linger_ms` holds them, so records of
    one partition share a batch (see `wire_batches`). Raises if any is not acknowledged."""
    producer = confluent_kafka.Producer({
        "bootstrap.servers": bootstrap, "compression.type": compression,
        "linger.ms": linger_ms, "acks": "all",
        # as a CTI platform's producer would be; tansu refuses InitProducerId (BROKER_NOTES 1)
        "enable.idempotence": ON_KAFKA,
        "message.timeout.ms": int(timeout * 1000), "log.connection.close": False,
    })
    placed: list[Placed | None] = [None] * len(records)
    errors: list[str] = []

    def report(index: int) -> Any:
        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(f"record {index}: {err}")
            else:
                placed[index] = (int(msg.partition()), int(msg.offset()))
        return on_delivery

    for i, rec in enumerate(records):
        producer.produce(topic, value=rec.value, key=rec.key,
                         headers=list(rec.headers) or None, on_delivery=report(i),
                         partition=-1 if rec.partition is None else rec.partition)  # -1: any
    left = producer.flush(timeout)
    assert left == 0 and not errors, f"{left} records not delivered; {errors}"
    assert all(p is not None for p in placed)
    return [p for p in placed if p is not None]


async def produce(bootstrap: str, topic: str, records: Sequence[RdRecord], *,
                  compression: str = "none", linger_ms: int = 100) -> list[Placed]:
    """`produce_sync` in a thread: librdkafka's flush blocks, and a daemon may be running
    on this loop."""
    return await asyncio.to_thread(produce_sync, bootstrap, topic, records,
                                   compression=compression, linger_ms=linger_ms)


@dataclass(frozen=True)
class Read:
    """A record as librdkafka's consumer hands it over."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # ms, as the producer (or the broker) set it
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def consume_sync(bootstrap: str, topic: str, count: int, timeout: float = 15.0) -> list[Read]:
    """The first `count` records of every partition of `topic`, read by a librdkafka
    consumer assigned to them (no group coordination, nothing committed); fewer if they
    are not there within `timeout` seconds."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": "hookd-tests-rdkafka",
        "enable.auto.commit": False, "allow.auto.create.topics": False})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                         for p in parts])
        got: list[Read] = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append(Read(msg.topic(), msg.partition(), msg.offset(), msg.timestamp()[1],
                                msg.key(), msg.value(), tuple(msg.headers() or ())))
        return got
    finally:
        consumer.close()


async def consume(bootstrap: str, topic: str, count: int, timeout: float = 15.0) -> list[Read]:
    """`consume_sync` in a thread (librdkafka's poll blocks; a daemon may run here)."""
    return await asyncio.to_thread(consume_sync, bootstrap, topic, count, timeout)


@dataclass
class _Seen:
    batches: dict[tuple[int, int], Batch] = field(default_factory=dict)


@contextlib.contextmanager
def _watching_batches() -> Iterator[_Seen]:
    """While inside, every record batch aiokafka's fetcher unpacks in this process is noted
    (codec and record count from its header). Patches aiokafka's fetcher module: use it only
    while no daemon runs in this process."""
    seen = _Seen()
    real = fetcher.MemoryRecords

    class Watched:
        def __init__(self, raw: bytes) -> None:
            self._inner = real(raw)

        def size_in_bytes(self) -> int:
            return int(self._inner.size_in_bytes())

        def has_next(self) -> bool:
            return bool(self._inner.has_next())

        def next_batch(self) -> Any:
            batch = self._inner.next_batch()
            if batch is not None and getattr(batch, "magic", 0) >= 2:
                seen.batches[(batch.base_offset, batch.crc)] = Batch(
                    batch.base_offset, _CODEC_OF_ID.get(batch.compression_type, "?"),
                    batch.last_offset_delta + 1)
            return batch

    fetcher.MemoryRecords = Watched
    try:
        yield seen
    finally:
        fetcher.MemoryRecords = real


async def wire_batches(bootstrap: str, topic: str, count: int) -> list[Batch]:
    """The record batches holding the first `count` records of `topic` (all partitions)."""
    with _watching_batches() as seen:
        await consume_all(bootstrap, topic, count)
    return sorted(seen.batches.values(), key=lambda b: b.base_offset)

