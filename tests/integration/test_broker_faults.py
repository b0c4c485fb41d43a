"""Broker faults: down at start, and gone then back mid-run. A private broker per test.

Apache Kafka keeps its topics, records and committed offsets across a restart; tansu
(``BROKER=tansu``) comes back empty, so the topic is created again if missing. What this
proves is that hookd reconnects and carries on. A broker that refuses the idempotent
producer is tansu itself (Apache Kafka grants it): that test runs on tansu whatever the
session's broker. The cluster faults (a leader killed, rolling restarts, a whole cluster
down) are in test_cluster_faults.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import orjson
import pytest
import yaml

from hookd.service.stopping import STOP_BUDGET
from tests.integration.broker import Broker, TansuBroker, create_topic
from tests.integration.harness import (
    DaemonProcess,
    free_port,
    get_json,
    hook,
    produce,
    read_topic,
    unique,
    wait_process_ready,
    write_config,
)
from tests.integration.receiver import Receiver


async def test_broker_down_at_start_hookd_waits_then_delivers(
        receiver: Receiver, tmp_path: Path) -> None:
    port, health = free_port(), free_port()
    topic = unique("late")
    cfg = write_config(tmp_path, f"127.0.0.1:{port}", topic,
                       [hook("h", "Answered", receiver.url("/h"))], health_port=health)
    proc = DaemonProcess(cfg).start()
    broker = Broker(tmp_path / "broker", port=port)  # the daemon already knows the port
    try:
        async with asyncio.timeout(20):  # health answers while Kafka is unreachable
            while True:
                try:
                    status, body = await get_json(f"http://127.0.0.1:{health}/readyz")
                    break
                except OSError:
                    await asyncio.sleep(0.1)
        assert status == 503 and body["assigned_partitions"] == []
        await asyncio.sleep(3)
        assert proc.proc is not None and proc.proc.poll() is None  # waiting, not crashing
        await asyncio.to_thread(broker.start)
        await create_topic(broker.bootstrap, topic, 2)
        await wait_process_ready(health, timeout=60)
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": "1"})])
        await receiver.wait_for(1, "/h", timeout=30)
        assert any(line.get("msg") == "kafka not reachable, retrying" for line in proc.lines())
    finally:
        proc.stop_now()
        broker.stop()


async def test_broker_restart_mid_run_hookd_reconnects(
        receiver: Receiver, tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker")
    await asyncio.to_thread(broker.start)
    health = free_port()
    topic = unique("bounce")
    await create_topic(broker.bootstrap, topic, 2)
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("h", "Answered", receiver.url("/h"))], health_port=health)
    proc = DaemonProcess(cfg).start()
    try:
        await wait_process_ready(health, timeout=60)
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": "before"})])
        await receiver.wait_for(1, "/h")
        await asyncio.to_thread(broker.restart)  # tansu comes back empty: the topic again
        await create_topic(broker.bootstrap, topic, 2, exist_ok=True)
        assert proc.proc is not None and proc.proc.poll() is None
        for i in range(60):  # keep producing until the reconnected consumer picks one up
            await produce(broker.bootstrap, topic,
                          [(b"k", {"event": "Answered", "id": f"after-{i}"})])
            try:
                await receiver.wait_for(2, "/h", timeout=1)
                break
            except AssertionError:
                continue
        ids = {r.body for r in receiver.at("/h")}
        assert len(ids) >= 2 and any(b"after-" in b for b in ids)
    finally:
        proc.stop_now()
        broker.stop()


async def test_an_idempotent_producer_the_broker_refuses_is_named_and_retried(
        receiver: Receiver, tmp_path: Path) -> None:
    """tansu has no idempotent producer (BROKER_NOTES point 1): with `kafka.idempotence`
    on, hookd says which client the broker refused and why, stays unready, and stops.
    (On tansu whatever the session's broker: Apache Kafka grants the idempotent producer.)"""
    broker = TansuBroker(tmp_path / "tansu")
    await asyncio.to_thread(broker.start)
    health = free_port()
    cfg = write_config(tmp_path, broker.bootstrap, unique("idem"),
                       [hook("h", "Answered", receiver.url("/h"))], health_port=health)
    config = yaml.safe_load(cfg.read_text())
    config["kafka"]["idempotence"] = True
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    proc = DaemonProcess(cfg).start()
    try:
        async with asyncio.timeout(30):
            while not any(line.get("msg") == "the broker refused an idempotent producer, "
                          "retrying" for line in proc.lines()):
                await asyncio.sleep(0.2)
        [refused, *_] = [line for line in proc.lines()
                         if line.get("msg", "").startswith("the broker refused")]
        assert refused["client"] == "producer" and refused["level"] == "error"
        assert "kafka.idempotence" in refused["hint"]
        assert not any(line.get("msg") == "kafka not reachable, retrying"
                       for line in proc.lines())  # it was reachable: it said no
        status, body = await get_json(f"http://127.0.0.1:{health}/readyz")
        assert status == 503 and body["assigned_partitions"] == []
        proc.signal(signal.SIGTERM)
        assert await proc.wait(20) == 0
    finally:
        proc.stop_now()
        broker.stop()


async def test_by_default_a_broker_without_idempotence_gets_a_plain_producer(
        receiver: Receiver, tmp_path: Path) -> None:
    """`kafka.idempotence: auto`, the default: tansu refuses InitProducerId, so hookd warns
    once and goes on with a plain producer (parks and dead-letters as before)."""
    broker = TansuBroker(tmp_path / "tansu")
    await asyncio.to_thread(broker.start)
    health, topic, dlq = free_port(), unique("auto"), unique("dlq")
    await create_topic(broker.bootstrap, topic, 1)
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("h", "Answered", receiver.url("/h"))], dlq=dlq,
                       health_port=health)
    assert "idempotence" not in yaml.safe_load(cfg.read_text())["kafka"]
    receiver.plan["/h"].append(400)  # a dead letter: the plain producer writes it
    proc = DaemonProcess(cfg).start()
    try:
        await wait_process_ready(health, timeout=60)
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": "a"})])
        [letter] = await read_topic(broker.bootstrap, dlq, 1)
        assert orjson.loads(letter.value)["event_id"] == "a"
        proc.signal(signal.SIGTERM)
        assert await proc.wait(20) == 0
    finally:
        proc.stop_now()
        broker.stop()
    [fallback] = [line for line in proc.lines()
                  if line.get("msg", "").startswith("the broker refused an idempotent")]
    assert fallback["level"] == "warning" and "a plain one is used" in fallback["msg"]
    [connected] = [line for line in proc.lines() if line.get("msg") == "kafka connected"]
    assert connected["producer_id"] is None


@pytest.mark.parametrize("fault", ["frozen", "gone"])
async def test_a_broker_frozen_or_gone_at_sigterm_does_not_hold_the_stop(
        fault: str, receiver: Receiver, tmp_path: Path) -> None:
    """The broker stops answering (SIGSTOP: a long GC pause, a partition) or is gone
    (SIGKILL) just as hookd is told to stop: the commit and the clients' goodbyes cannot be
    answered, and aiokafka retries them without end. hookd gives each closing step its
    budget, says which ones ran out, and exits 0 in time for systemd's TimeoutStopSec
    instead of hanging until SIGKILL. Nothing is lost: what was not committed is delivered
    again after the restart."""
    broker = Broker(tmp_path / "broker")
    await asyncio.to_thread(broker.start)
    health, topic = free_port(), unique(fault)
    await create_topic(broker.bootstrap, topic, 2)
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("h", "Answered", receiver.url("/h"))], health_port=health)
    data = yaml.safe_load(cfg.read_text())
    data["shutdown_timeout"] = "2s"
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    proc = DaemonProcess(cfg).start()
    pid = broker.pid
    assert pid is not None
    try:
        await wait_process_ready(health, timeout=60)
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": str(i)})
                                                for i in range(5)])
        await receiver.wait_for(5, "/h", timeout=30)
        os.kill(pid, signal.SIGSTOP if fault == "frozen" else signal.SIGKILL)
        began = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert await proc.wait(STOP_BUDGET + 2 + 5) == 0
        took = time.monotonic() - began
    finally:
        if fault == "frozen":
            os.kill(pid, signal.SIGCONT)
        proc.stop_now()
        broker.stop()
    overran = [line for line in proc.lines() if line.get("msg") == "shutdown step overran"]
    assert overran, f"the broker was {fault}: some step must have waited for it"
    assert all(line["level"] == "warning" and line["waiting"] for line in overran)
    assert any(line.get("msg") == "stopped" for line in proc.lines())
    print(f"{fault} broker: stopped in {took:.1f}s; overran: "
          f"{[(line['step'], line['waiting']) for line in overran]}")
