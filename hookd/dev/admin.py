"""Creating a topic on the local broker, as hookd creates its own, strictly checked."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from hookd.kafka import topics

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
    ``configs``), as hookd creates its own topics (``hookd.kafka.topics.create_topics``:
    CreateTopics, its per-topic errors read, the topic waited for until a broker serves its
    leaders), but strict: a refusal raises, and so does an existing topic unless
    ``exist_ok``. Then read back until the broker asked knows all its partitions (on a
    cluster, the one asked next may not know the topic yet).
    """
    from aiokafka.admin import AIOKafkaAdminClient

    if partitions < 1:
        raise ValueError("partitions must be >= 1 (tansu would accept 0 and be unusable)")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        made = await asyncio.wait_for(topics.create_topics(
            admin, [name], partitions, replication, {name: configs or {}}), timeout)
        if name in made.refused:
            raise RuntimeError(f"CreateTopics({name!r}) failed: {made.refused[name]}")
        if name in made.existing and not exist_ok:
            raise RuntimeError(f"CreateTopics({name!r}) failed: error "
                               f"{_TOPIC_ALREADY_EXISTS} (the topic exists)")
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
