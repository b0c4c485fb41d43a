"""Readiness sees writes that keep failing: a dead-letter topic that refuses hookd's records
makes /readyz answer 503 `stalled` with the topic and the error, nothing is committed past
the record whose letter is not written, and readiness comes back by itself once a write
succeeds.

The broker refuses the letter because it is larger than the topic's `max.message.bytes`
(the topic is created here with a small one, then raised with AlterConfigs): no ACLs are
needed. A broker that ignores topic configs (tansu: BROKER_NOTES 9) cannot run that test;
the second one makes the letter larger than the producer's own `kafka.max_request_size`
(its key, which is never cut), which fails on any broker, and recovers by a restart with
a larger one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError

from tests.integration.harness import (
    committed,
    get_json,
    hook,
    new_topic,
    produce,
    read_topic,
    running,
    unique,
    until,
    wait_ready,
    write_config,
)
from tests.integration.receiver import Receiver

SMALL = 2048  # the dead-letter topic's max.message.bytes while it refuses
BAD = b"not json " + b"x" * 4000  # a record hookd cannot decode: dead-lettered, ~5.5 kB
OUT = os.environ.get("HOOKD_READYZ_OUT")  # where to keep what /readyz said, for a note


async def _create(bootstrap: str, name: str, max_bytes: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs={
            "max.message.bytes": str(max_bytes)})])
    finally:
        await admin.close()


async def _raise_limit(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.alter_configs([ConfigResource(
            ConfigResourceType.TOPIC, name, {"max.message.bytes": str(1 << 20)})])
        assert all(r[0] == 0 for r in response.resources), response
    finally:
        await admin.close()


async def _enforced(bootstrap: str) -> bool:
    """Whether the broker refuses a record larger than its topic's max.message.bytes."""
    name = unique("limit-probe")
    await _create(bootstrap, name, SMALL)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(name, b"x" * (2 * SMALL))
    except MessageSizeTooLargeError:
        return True
    finally:
        await producer.stop()
    return False


class Readyz:
    """GET /readyz, each answer kept as curl -i would show it (and written to OUT)."""

    def __init__(self, port: int) -> None:
        self.port, self.seen = port, []  # type: list[str]

    async def __call__(self, label: str) -> tuple[int, dict[str, Any]]:
        status, body = await get_json(f"http://127.0.0.1:{self.port}/readyz")
        shown = {k: body[k] for k in ("status", "reason", "since", "stalls", "counters")
                 if k in body}
        self.seen.append(f"# {label}\n$ curl -si http://127.0.0.1:{self.port}/readyz\n"
                         f"HTTP/1.1 {status}\n"
                         f"{orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode()}\n")
        if OUT:
            Path(OUT).write_text("\n".join(self.seen))
        return status, body


def _cfg(tmp_path: Path, bootstrap: str, topic: str, dlq: str, group: str,
         receiver: Receiver, max_request_size: int = 1 << 20) -> Path:
    path = write_config(
        tmp_path, bootstrap, topic, [hook("h", "Answered", receiver.url("/h"))], dlq=dlq,
        group=group, health={"listen": "127.0.0.1:0", "stall_after": "1s"},
        shutdown_timeout="1s")
    config = yaml.safe_load(path.read_text())
    config["kafka"]["max_request_size"] = max_request_size
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def test_a_dead_letter_topic_refusing_records_stalls_readiness_until_it_takes_them(
        bootstrap: str, receiver: Receiver, tmp_path: Path) -> None:
    if not await _enforced(bootstrap):
        pytest.skip("this broker ignores a topic's max.message.bytes (tansu); see the "
                    "next test for a refusal on any broker")
    topic, dlq, group = await new_topic(bootstrap, 1, "pstall"), unique("dlq"), unique("g")
    await _create(bootstrap, dlq, SMALL)
    cfg = _cfg(tmp_path, bootstrap, topic, dlq, group, receiver)
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        assert daemon.health is not None
        readyz = Readyz(daemon.health.port)
        status, _ = await readyz("before: ready")
        assert status == 200
        await produce(bootstrap, topic, [(b"k", {"event": "Answered", "id": "a0"}),
                                         (b"k", BAD),
                                         (b"k", {"event": "Answered", "id": "a2"})])
        await receiver.wait_for(2, "/h")  # the neighbours are delivered meanwhile
        await until(lambda: not daemon.state()[0], 15, "the produce stall")
        status, body = await readyz(f"while {dlq} refuses the dead letter (max.message.bytes "
                                    f"{SMALL})")
        assert status == 503 and body["status"] == "stalled"
        [stall] = body["stalls"]
        assert stall["kind"] == "produce" and stall["topic"] == dlq
        assert stall["reason"].startswith("not retriable: [Error 10] MessageSizeTooLargeError")
        assert "max.message.bytes" in stall["reason"]
        assert body["reason"].startswith(f"producer: produce to {dlq}: not retriable")
        # nothing committed past the record whose letter is not written (offset 1)
        await asyncio.sleep(1)  # commits every 200 ms
        assert (await committed(bootstrap, group, topic, 1))[0] <= 1
        await _raise_limit(bootstrap, dlq)  # the operator's fix
        [letter] = await read_topic(bootstrap, dlq, 1, timeout=30)
        await until(lambda: daemon.state()[0], 30, "readiness again")
        status, body = await readyz(f"after {dlq}'s max.message.bytes was raised")
        assert status == 200 and body["status"] == "ready" and "stalls" not in body
    assert orjson.loads(letter.value)["source"]["offset"] == 1
    assert (await committed(bootstrap, group, topic, 1))[0] == 3


async def test_a_dead_letter_larger_than_the_producer_takes_stalls_until_a_restart(
        bootstrap: str, receiver: Receiver, tmp_path: Path) -> None:
    topic, dlq, group = await new_topic(bootstrap, 1, "pstall"), unique("dlq"), unique("g")
    key = b"k" * 70_000  # over the smallest max_request_size: a letter keeps its key
    small = _cfg(tmp_path / "small", bootstrap, topic, dlq, group, receiver, 65536)
    await produce(bootstrap, topic, [(b"k", {"event": "Answered", "id": "a0"}), (key, BAD),
                                     (b"k", {"event": "Answered", "id": "a2"})])
    async with running(small) as daemon:
        assert daemon.health is not None
        readyz = Readyz(daemon.health.port)
        await receiver.wait_for(2, "/h")
        await until(lambda: bool(daemon.state()[1].get("stalls")), 15, "the produce stall")
        status, body = await readyz("a dead letter over kafka.max_request_size (65536)")
        assert status == 503 and body["status"] == "stalled"
        [stall] = body["stalls"]
        assert stall["topic"] == dlq and stall["reason"].endswith(
            "larger than kafka.max_request_size (a dead letter's key is never cut): raise it")
        assert stall["reason"].startswith("not retriable: [Error 10] MessageSizeTooLarge")
        with contextlib.suppress(AssertionError):  # nothing there, nothing coming
            await read_topic(bootstrap, dlq, 1, timeout=1)
            raise AssertionError(f"a letter on {dlq}")
    assert (await committed(bootstrap, group, topic, 1))[0] <= 1  # the record comes again
    larger = _cfg(tmp_path / "larger", bootstrap, topic, dlq, group, receiver)
    async with running(larger) as daemon:
        [letter] = await read_topic(bootstrap, dlq, 1, timeout=30)
        await until(lambda: daemon.state()[0], 30, "readiness")
        assert daemon.health is not None
        status, _ = await Readyz(daemon.health.port)("restarted with the default (1 MiB)")
        assert status == 200
    assert letter.key == key and orjson.loads(letter.value)["source"]["offset"] == 1
    assert (await committed(bootstrap, group, topic, 1))[0] == 3
