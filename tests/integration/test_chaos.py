"""Crash safety under steady load: kill -9 hookd at random moments, restart, lose nothing.

`make test` runs a few rounds; `make chaos` runs many (HOOKD_CHAOS_ROUNDS, default 12)
and prints the summary line: rounds, events, lost (must be 0), duplicates.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from tests.integration.broker import create_topic
from tests.integration.harness import (
    FAST_CONSUMER,
    DaemonProcess,
    free_port,
    hook,
    unique,
    until,
    write_config,
)
from tests.integration.receiver import Receiver

ROUNDS = int(os.environ.get("HOOKD_CHAOS_ROUNDS", "3"))
SEED = int(os.environ.get("HOOKD_CHAOS_SEED", "20261121"))
RATE = 200  # events per second, steady, for the whole run


async def _steady_load(bootstrap: str, topic: str, stop: asyncio.Event,
                       sent: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        i = 0
        while not stop.is_set():
            batch = []
            for _ in range(RATE // 20):
                event_id = f"c{i}"
                batch.append(await producer.send(
                    topic, orjson.dumps({"event": "Answered", "id": event_id}),
                    key=f"call-{i % 64}".encode()))
                sent.append(event_id)
                i += 1
            await asyncio.gather(*batch)
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()


async def test_kill_9_at_random_moments_loses_nothing(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    topic, group = unique("chaos"), unique("g")
    await create_topic(broker.bootstrap, topic, 4)
    receiver.delay["/c"] = 0.005
    cfg = write_config(
        tmp_path, broker.bootstrap, topic,
        [hook("c", "Answered", receiver.url("/c"),
              request={"body": '{"id": {{ id|tojson }}}'})],
        group=group, health_port=free_port(),
        kafka={"bootstrap_servers": [broker.bootstrap], "topics": [topic], "group_id": group,
               "dead_letter_topic": f"{topic}.dlq", "retry_replication": 1,
               "retry_topic_prefix": unique("retry"),
               "consumer": {**FAST_CONSUMER, "session_timeout": "3s"}})
    stop, sent = asyncio.Event(), []
    load = asyncio.create_task(_steady_load(broker.bootstrap, topic, stop, sent))
    kills = 0
    try:
        for _ in range(ROUNDS):
            proc = DaemonProcess(cfg).start()
            await asyncio.sleep(rng.uniform(1.0, 6.0))  # anywhere: joining, idle, busy
            assert proc.proc is not None and proc.proc.poll() is None, proc.log.read_text()
            proc.proc.send_signal(signal.SIGKILL)
            await proc.wait()
            kills += 1
        stop.set()
        await load
        final = DaemonProcess(cfg).start()
        try:
            expected = set(sent)
            await until(lambda: expected <= {orjson.loads(r.body)["id"]
                                             for r in receiver.at("/c")}, 120)
            final.signal(signal.SIGTERM)
            assert await final.wait() == 0
        finally:
            final.stop_now()
    finally:
        stop.set()
        await asyncio.gather(load, return_exceptions=True)

    copies: dict[str, set[str]] = defaultdict(set)
    count: dict[str, int] = defaultdict(int)
    for req in receiver.at("/c"):
        event_id = orjson.loads(req.body)["id"]
        copies[event_id].add(req.headers["webhook-id"])
        count[event_id] += 1
    lost = len(set(sent) - set(count))
    duplicates = sum(n - 1 for n in count.values())
    print(f"\nchaos: rounds={kills} events={len(sent)} delivered={sum(count.values())} "
          f"lost={lost} duplicates={duplicates}")
    assert lost == 0
    assert all(len(ids) == 1 for ids in copies.values())  # every copy: the first one's id
