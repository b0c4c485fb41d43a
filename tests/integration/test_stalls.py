"""Readiness tells the truth: a partition that cannot be read, and a broker that is gone,
make /readyz answer 503 "stalled" with the reason, and ready again once the cause is gone.

The codec case makes the codec library unavailable in this process (aiokafka looks for
cramjam at each batch), as on a machine installed without it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiokafka.codec
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.broker import Broker, create_topic
from tests.integration.harness import (
    DaemonProcess,
    committed,
    free_port,
    get_json,
    hook,
    new_topic,
    running,
    unique,
    until,
    wait_process_ready,
    write_config,
)
from tests.integration.receiver import Receiver

STALL = {"listen": "127.0.0.1:0", "stall_after": "1s"}


async def _send(bootstrap: str, topic: str, partition: int, ids: list[str],
                compression: str | None = None) -> None:
    """`ids` as Answered events to one partition, in one batch (linger) when compressed."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=compression,
                                linger_ms=50 if compression else 0)
    await producer.start()
    try:
        futures = [await producer.send(topic, orjson.dumps({"event": "Answered", "id": i}),
                                       partition=partition) for i in ids]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _ids(receiver: Receiver) -> list[str]:
    return [orjson.loads(r.body)["id"] for r in receiver.at("/h")]


async def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    return await get_json(f"http://127.0.0.1:{port}/readyz")


async def test_a_partition_in_a_codec_hookd_cannot_read_stalls_alone_and_recovers(
        bootstrap: str, receiver: Receiver, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    topic = await new_topic(bootstrap, 2, "codec")
    await _send(bootstrap, topic, 0, ["p0-a0", "p0-a1", "p0-a2"])
    await _send(bootstrap, topic, 0, [f"p0-lz{i}" for i in range(5)], compression="lz4")
    await _send(bootstrap, topic, 0, ["p0-b0", "p0-b1"])
    await _send(bootstrap, topic, 1, [f"p1-{i}" for i in range(5)])
    group = unique("g")
    cfg = write_config(tmp_path, bootstrap, topic, [hook("h", "Answered", receiver.url("/h"))],
                       group=group, health=STALL)
    monkeypatch.setattr(aiokafka.codec, "cramjam", None)  # as if installed without it
    async with running(cfg) as daemon:
        assert daemon.health is not None
        port = daemon.health.port
        # the neighbours: partition 1 whole, and partition 0 up to the unreadable batch
        await receiver.wait_for(8, "/h")
        await until(lambda: not daemon.state()[0] and bool(daemon.state()[1].get("stalls")),
                    10, "a stall")
        status, body = await _readyz(port)
        print("\n/readyz while stalled:", status, orjson.dumps(
            {k: body[k] for k in ("status", "reason", "since", "stalls")}).decode())
        assert status == 503 and body["status"] == "stalled", body
        stall = body["stalls"][0]
        assert stall["kind"] == "records" and stall["partition"] == f"{topic}-0"
        assert stall["offset"] == 3 and "lz4" in stall["reason"], stall
        assert body["reason"].startswith("source consumer: records: UnsupportedCodecError")
        assert body["since"] == stall["since"]
        assert sorted(_ids(receiver)) == sorted(
            ["p0-a0", "p0-a1", "p0-a2"] + [f"p1-{i}" for i in range(5)])
        async with asyncio.timeout(10):  # nothing past the unreadable batch is committed
            while (done := await committed(bootstrap, group, topic, 2)) != {0: 3, 1: 5}:
                await asyncio.sleep(0.2)
        assert done == {0: 3, 1: 5}

        monkeypatch.setattr(aiokafka.codec, "cramjam", pytest.importorskip("cramjam"))
        await receiver.wait_for(15, "/h", timeout=20)  # the partition is tried again
        await until(lambda: daemon.state()[0], 10, "ready again")
        status, body = await _readyz(port)
        print("/readyz after recovery:", status, orjson.dumps(
            {k: body[k] for k in ("status", "assigned_partitions", "counters")}).decode())
        assert status == 200 and body["status"] == "ready" and "stalls" not in body
    ids = _ids(receiver)
    assert len(ids) == 15 == len(set(ids))  # each once: nothing lost, nothing twice
    p0 = [i for i in ids if i.startswith("p0-")]
    assert p0 == ["p0-a0", "p0-a1", "p0-a2", *(f"p0-lz{i}" for i in range(5)),
                  "p0-b0", "p0-b1"]  # in offset order


async def test_a_broker_that_is_gone_makes_readyz_say_stalled_until_it_is_back(
        receiver: Receiver, tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker")
    await asyncio.to_thread(broker.start)
    health = free_port()
    topic = unique("gone")
    await create_topic(broker.bootstrap, topic, 2)
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("h", "Answered", receiver.url("/h"))],
                       health={"listen": f"127.0.0.1:{health}", "stall_after": "2s"})
    proc = DaemonProcess(cfg).start()
    try:
        await wait_process_ready(health, timeout=60)
        await _send(broker.bootstrap, topic, 0, ["before"])
        await receiver.wait_for(1, "/h")
        await asyncio.to_thread(broker.stop)
        body: dict[str, Any] = {}
        async with asyncio.timeout(30):
            while body.get("status") != "stalled":
                await asyncio.sleep(0.2)
                status, body = await _readyz(health)
        assert status == 503 and body["stalls"][0]["kind"] == "fetch", body
        assert "broker did not answer" in body["reason"], body
        # /readyz reckons stalls when asked; the log line is written at the loop's next
        # check of its watches, a moment later
        await until(lambda: any(line.get("msg") == "consumer stalled"
                                for line in proc.lines()), 10, "the consumer stalled line")
        stalled_lines = [line for line in proc.lines() if line.get("msg") == "consumer stalled"]
        assert stalled_lines[0]["level"] == "error", stalled_lines

        await asyncio.to_thread(broker.start)  # back (tansu: empty, memory storage)
        await create_topic(broker.bootstrap, topic, 2, exist_ok=True)
        for i in range(60):  # until the reconnected consumer picks one up
            await _send(broker.bootstrap, topic, 0, [f"after-{i}"])
            try:
                await receiver.wait_for(2, "/h", timeout=1)
                break
            except AssertionError:
                continue
        body = await wait_process_ready(health, timeout=30)
        assert body["status"] == "ready" and "stalls" not in body
        assert any(line.get("msg") == "consumer recovered" for line in proc.lines())
    finally:
        proc.stop_now()
        broker.stop()
