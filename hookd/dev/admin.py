"""Creating a topic on the local broker (CreateTopics, checked, then DescribeTopics)."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from hookd.kafka.topics import until_served

_TOPIC_ALREADY_EXISTS: Final = 36


async def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 4,
    *,
    exist_ok: bool = True,
    timeout: float = 10.0,
    replication: int = 1,
    configs: dict[str, str] | None = None,
) -> None:
    """Create ``name`` with ``partitions`` partitions (and ``replication`` replicas, topic
    ``configs``) via the CreateTopics API.

    tansu implements CreateTopics with any partition count (replication factor is
    accepted and ignored).  aiokafka does not raise on per-topic errors, so they are
    checked here; the result is verified with DescribeTopics.  Fallback, should
    CreateTopics ever be unavailable: producing to (or subscribing to) an unknown topic
    auto-creates it with tansu's default of 4 partitions.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    if partitions < 1:
        raise ValueError("partitions must be >= 1 (tansu would accept 0 and be unusable)")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        response: Any = await asyncio.wait_for(
            admin.create_topics([NewTopic(name, partitions, replication,
                                          topic_configs=configs or {})]), timeout
        )
        for topic_error in response.topic_errors:
            topic, code = topic_error[0], topic_error[1]
            message = topic_error[2] if len(topic_error) > 2 else None
            if code == _TOPIC_ALREADY_EXISTS and exist_ok:
                continue
            if code != 0:
                raise RuntimeError(f"CreateTopics({topic!r}) failed: error {code} {message}")
        # Apache Kafka's brokers learn of the topic a moment after CreateTopics answers,
        # each in its own time: the broker asked next may not know it yet, so ask again
        await until_served(admin, [name], 1 if exist_ok else partitions, within=timeout)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            described: list[dict[str, Any]] = await asyncio.wait_for(
                admin.describe_topics([name]), timeout
            )
            got = len(described[0]["partitions"])
            if exist_ok or got == partitions:
                break
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"topic {name!r} has {got} partitions, expected {partitions}")
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
