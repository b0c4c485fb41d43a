"""The broker of the integration tests: Apache Kafka (KRaft, from its jars) by default, or
tansu (``HOOKD_TEST_BROKER=tansu``, i.e. ``make test BROKER=tansu``).

:class:`KafkaBroker` is one Apache Kafka node (``hookd.dev.kafka.KafkaCluster``) behind the
interface tansu's ``DevBroker`` has: ``start``/``stop``/``kill``/``restart``, ``bootstrap``,
``port``, ``running``, ``log_tail``. Unlike tansu, its data lives on disk: a restarted or
killed-and-started broker comes back with its topics, records and committed offsets.
:data:`Broker` is the class the session's tests use; :data:`BROKER` names it.

``TansuBroker`` (``hookd.dev.broker.DevBroker``, shared with the demo and the benchmarks)
runs one ``tansu broker`` process on ``127.0.0.1`` with the default
in-memory storage engine.  It is deliberately synchronous (``start``/``stop``/``restart``/
``kill`` block for at most a few hundred milliseconds), so it can back a session-scoped
pytest fixture without tying it to an asyncio event loop.

Things to know about tansu (details and numbers in ``BROKER_NOTES.md``):

* Storage is memory-only: a ``restart()`` or ``kill()`` + ``start()`` loses every topic,
  record and committed offset.  After a restart, re-create the topics you need
  (``create_topic``) *before* any long-lived producer writes again: a producer holding
  cached metadata can write into a topic tansu no longer knows, and those records are
  acknowledged but can never be fetched.
* A new consumer group gets its first assignment after ``ceil(session_timeout_ms / 2000)``
  seconds (minimum 1 s; 5 s with aiokafka's defaults); use :data:`FAST_GROUP_CONFIG`.
* ``ListOffsets(latest)`` (``AIOKafkaConsumer.end_offsets``) is wrong when the last write
  was a multi-record batch, so :func:`produce` writes one record per request.
* Idempotent and transactional producers do not work (``InitProducerId`` fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from hookd.dev import broker as devbroker
from hookd.dev.broker import HOST, BrokerStartError, tansu_binary
from hookd.dev.broker import DevBroker as TansuBroker
from hookd.dev.kafka import KAFKA_VERSION, KafkaCluster

__all__ = [
    "BROKER",
    "FAST_GROUP_CONFIG",
    "HOST",
    "Broker",
    "BrokerStartError",
    "KafkaBroker",
    "Message",
    "Record",
    "TansuBroker",
    "consume_all",
    "create_topic",
    "produce",
    "tansu_binary",
]

#: Consumer settings that make consumer groups fast *and* stable against tansu.  Measured:
#: first assignment 1.0 s; a second member joining 2.0 s; two members starting together
#: 1-2 s; a member leaving gracefully 1.1 s; partitions of a SIGKILLed member - or of a
#: stopped *sole* member, which never sends LeaveGroup because tansu starts at generation
#: 0 - are taken over after ~4.1 s; a resumed partition is fetched within fetch_max_wait_ms.
#: session_timeout_ms must stay >= 1000: tansu parks JoinGroup for ceil(session/2) s (at
#: least 1 s) and groups of two or more never stabilise below 1000 ms.  Exactly 1000 makes
#: take-overs 1.0 s but is on that edge; 1500 keeps a margin.
FAST_GROUP_CONFIG: Final[Mapping[str, int]] = {
    "session_timeout_ms": 1500,
    "heartbeat_interval_ms": 150,
    "rebalance_timeout_ms": 5000,
    "fetch_max_wait_ms": 50,
    "metadata_max_age_ms": 1000,
    "retry_backoff_ms": 50,
}


class KafkaBroker:
    """One Apache Kafka node on loopback, with tansu's ``DevBroker`` interface.

    ``port`` fixes its PLAINTEXT port (a daemon already configured with it), else a free
    one is picked at construction and kept across restarts.
    """

    def __init__(self, workdir: Path | None = None, *, port: int | None = None,
                 startup_timeout: float = 90.0, **cluster: Any) -> None:
        self.cluster = KafkaCluster(workdir, nodes=1, ports=[port] if port else (),
                                    startup_timeout=startup_timeout, **cluster)
        self.node = self.cluster.nodes[0]
        self._started = False

    version = KAFKA_VERSION

    @property
    def bootstrap(self) -> str:
        return self.node.bootstrap

    @property
    def port(self) -> int:
        return self.node.port

    @property
    def pid(self) -> int | None:
        return self.node.pid

    @property
    def running(self) -> bool:
        return self.node.running

    def log_tail(self, lines: int = 40) -> str:
        return self.node.log_tail(lines)

    def start(self) -> KafkaBroker:
        if not self._started:
            self.cluster.start()
            self._started = True
        elif not self.running:
            self.cluster.start_node(self.node)
        return self

    def stop(self) -> None:
        self.cluster.stop()

    def kill(self) -> None:
        self.node.kill()

    def restart(self) -> None:
        """SIGTERM, then start again on the same port, with the same data."""
        self.node.terminate()
        self.start()

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<KafkaBroker {KAFKA_VERSION} {self.node!r}>"


#: ``kafka`` (Apache Kafka, the default) or ``tansu`` (HOOKD_TEST_BROKER, make's BROKER)
BROKER: Final[str] = os.environ.get("HOOKD_TEST_BROKER", "kafka").strip().lower() or "kafka"
if BROKER not in ("kafka", "tansu"):
    raise RuntimeError(f"HOOKD_TEST_BROKER={BROKER!r}: expected kafka or tansu")
#: The broker class of this session's integration tests.
Broker: Final[Any] = TansuBroker if BROKER == "tansu" else KafkaBroker
ON_KAFKA: Final[bool] = BROKER == "kafka"


@dataclass(frozen=True)
class Record:
    """A record to produce.  ``partition=None`` lets the client partitioner choose."""

    value: bytes | None
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes]] = ()
    partition: int | None = None


@dataclass(frozen=True)
class Message:
    """A consumed record, decoupled from aiokafka's (untyped) ``ConsumerRecord``."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = field(default=())
    timestamp: int = -1


async def create_topic(bootstrap: str, name: str, partitions: int = 4, *,
                       exist_ok: bool = False, timeout: float = 10.0,
                       configs: dict[str, str] | None = None) -> None:
    """``hookd.dev.broker.create_topic``, strict by default: a test's topic is new."""
    await devbroker.create_topic(bootstrap, name, partitions, exist_ok=exist_ok,
                                 timeout=timeout, configs=configs)


async def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[Record | bytes],
    *,
    timeout: float = 10.0,
) -> list[tuple[int, int]]:
    """Produce ``records`` in order, one acknowledged request each (``acks="all"``).

    Returns ``(partition, offset)`` per record.  Records are deliberately not batched:
    tansu answers ``ListOffsets(latest)`` with *base offset of the last batch + 1*, so
    batched writes make ``end_offsets()`` (and lag computed from it) wrong.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=0, request_timeout_ms=10000
    )
    await producer.start()
    placed: list[tuple[int, int]] = []
    try:
        for item in records:
            rec = item if isinstance(item, Record) else Record(value=item)
            meta = await asyncio.wait_for(
                producer.send_and_wait(
                    topic,
                    value=rec.value,
                    key=rec.key,
                    partition=rec.partition,
                    headers=list(rec.headers) or None,
                ),
                timeout,
            )
            placed.append((int(meta.partition), int(meta.offset)))
    finally:
        await producer.stop()
    return placed


async def consume_all(
    bootstrap: str,
    topic: str,
    expected_count: int,
    timeout: float = 10.0,
) -> list[Message]:
    """Read ``topic`` from the beginning of every partition, without a consumer group.

    Returns as soon as at least ``expected_count`` messages were seen (everything
    fetched so far is returned, so callers can assert on "exactly N").  Raises
    ``TimeoutError`` listing what was received if fewer arrive within ``timeout``.
    Messages are ordered per partition, partitions in ascending order.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    got: list[Message] = []
    try:
        deadline = time.monotonic() + timeout
        partitions = await _partitions(bootstrap, topic, deadline)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while len(got) < expected_count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"got {len(got)}/{expected_count} messages from {topic!r} in "
                    f"{timeout}s: {[(m.partition, m.offset, m.value) for m in got]}"
                )
            batch = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for msgs in batch.values():
                got.extend(_to_message(m) for m in msgs)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
    got.sort(key=lambda m: (m.partition, m.offset))
    return got


async def _partitions(bootstrap: str, topic: str, deadline: float) -> set[int]:
    """The partitions of ``topic``, asked of the broker (DescribeTopics, never creating it)
    until it has them or ``deadline`` passes. A consumer's own metadata holds only the
    topics it subscribed to, so it cannot be asked about another one."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        while True:
            described: list[dict[str, Any]] = await admin.describe_topics([topic])
            if described and described[0]["error_code"] == 0 and described[0]["partitions"]:
                return {int(p["partition"]) for p in described[0]["partitions"]}
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic!r} does not exist on {bootstrap}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def _to_message(record: Any) -> Message:
    return Message(
        topic=str(record.topic),
        partition=int(record.partition),
        offset=int(record.offset),
        key=record.key,
        value=record.value,
        headers=tuple((str(k), bytes(v)) for k, v in record.headers),
        timestamp=int(record.timestamp),
    )
