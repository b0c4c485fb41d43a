"""What a real cluster asks of hookd, on tansu: hookd's producer with every codec (parked
deliveries and dead letters read back, by aiokafka and by librdkafka), its own topics
created at start, a missing source topic named, and `hookd check --connect` against a
healthy broker and a stopped one.

Not here: SASL and TLS. tansu 0.6 has `--authentication` (SCRAM users made with
`tansu user create`) and `--cert/--key`; see BROKER_NOTES.md for what was found. Their
settings are checked on the clients built, in tests/unit/test_kafka_settings.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient

from hookd.kafka.parking import read_parked
from hookd.kafka.topics import topic_configs
from tests.integration.broker import ON_KAFKA, Broker, create_topic
from tests.integration.harness import (
    hook,
    new_topic,
    produce,
    read_topic,
    running,
    unique,
    wait_ready,
    write_config,
)
from tests.integration.receiver import Receiver

WORKTREE = Path(__file__).resolve().parents[2]
# attempt 1, attempt 2 after 50 ms in memory, attempt 3 after ~1 s from a retry topic
DELIVERY = {"allow_networks": ["127.0.0.0/8"], "timeout": "2s",
            "retry": {"schedule": ["50ms", "1s"], "inline_max": "200ms", "jitter": 0.0}}
OUTPUT = Path(os.environ.get("HOOKD_CHECK_OUTPUT", "/tmp/hookd-check-connect"))


def _config(tmp_path: Path, bootstrap: str, topic: str, hooks: list[dict[str, Any]],
            **kafka: Any) -> Path:
    path = write_config(tmp_path, bootstrap, topic, hooks, delivery=DELIVERY)
    data = yaml.safe_load(path.read_text())
    data["kafka"].update({"retry_topic_prefix": unique("retry"), **kafka})
    data["hooks_dir"] = None
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _librdkafka_read(bootstrap: str, topic: str, count: int) -> list[bytes]:
    """The values of `topic` as librdkafka (confluent-kafka) decodes them."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("rdk"),
                         "enable.auto.commit": False, "allow.auto.create.topics": False})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        got: list[bytes] = []
        deadline = time.monotonic() + 15
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
        return got
    finally:
        consumer.close()


async def _partitions(bootstrap: str, topic: str) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        found = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
        return found.get(topic)
    finally:
        await admin.close()


# ---------------------------------------------------------------------------- compression


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd", "none"])
async def test_records_hookd_parks_and_dead_letters_are_read_back_with_every_codec(
        bootstrap: str, receiver: Receiver, tmp_path: Path, codec: str) -> None:
    topic, dlq = await new_topic(bootstrap, 2, "codec"), unique("dlq")
    receiver.plan["/fails"].extend([500] * 3)
    cfg = _config(tmp_path, bootstrap, topic, [hook("x", "Answered", receiver.url("/fails"))],
                  compression=codec, dead_letter_topic=dlq)
    prefix = yaml.safe_load(cfg.read_text())["kafka"]["retry_topic_prefix"]
    payload = {"event": "Answered", "id": "c1", "text": "hello " * 200}  # worth compressing
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(bootstrap, topic, [(b"k", payload)])
        [letter] = await read_topic(bootstrap, dlq, 1, timeout=30)
        [parked] = await read_topic(bootstrap, f"{prefix}.1s", 1)
    doc = orjson.loads(letter.value)
    assert (doc["attempts"], doc["payload"]) == (3, payload)
    [delivery] = read_parked(parked.value)
    assert (delivery.hook, delivery.event.payload) == ("x", payload)
    # an independent client decodes hookd's batches too
    [by_librdkafka] = await asyncio.to_thread(_librdkafka_read, bootstrap, dlq, 1)
    assert orjson.loads(by_librdkafka) == doc


# ---------------------------------------------------------------------------- own topics


async def test_the_dead_letter_topic_is_created_at_start_and_a_missing_source_is_named(
        bootstrap: str, receiver: Receiver, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    topic, dlq, absent = await new_topic(bootstrap, 2, "own"), unique("dlq"), unique("absent")
    cfg = _config(tmp_path, bootstrap, topic, [hook("x", "Answered", receiver.url("/ok"))],
                  dead_letter_topic=dlq, retry_partitions=3)
    data = yaml.safe_load(cfg.read_text())
    data["kafka"]["topics"] = [topic, absent]
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    capsys.readouterr()
    async with running(cfg) as daemon:
        assert await _partitions(bootstrap, dlq) == 3  # before any dead letter
        prefix = data["kafka"]["retry_topic_prefix"]
        assert await _partitions(bootstrap, f"{prefix}.1s") == 3
        assert daemon.parking is not None
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{")]
    missing = [e for e in lines if e.get("msg", "").startswith("source topic does not exist")]
    assert [(e["level"], e["topic"]) for e in missing] == [("warning", absent)]
    created = [e for e in lines if e.get("msg") == "topics created"]
    assert {(e["kind"], tuple(e["topics"])) for e in created} >= {("dead-letter", (dlq,))}


# ---------------------------------------------------------------------------- check --connect


def _check(config: Path, *more: str) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "hookd", "check", "--connect", "-c", str(config), *more],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(WORKTREE)})
    assert done.stderr == ""
    return done.returncode, done.stdout, time.monotonic() - started


def _keep(name: str, output: str) -> None:
    """The output, for the record (the closing note of issue 17 quotes it)."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / name).write_text(output)
    print(f"\n--- hookd check --connect ({name}) ---\n{output}")


async def test_check_connect_against_a_healthy_broker(
        bootstrap: str, receiver: Receiver, tmp_path: Path) -> None:
    topic, group = await new_topic(bootstrap, 4, "chk"), unique("g")
    hooks = [hook("crm", "Answered", receiver.url("/crm")),
             hook("crm-notes", "Noted", receiver.url("/notes/{{ payload.id }}")),
             hook("tenant", "Answered", "{{ payload.callback }}")]
    cfg = _config(tmp_path, bootstrap, topic, hooks, group_id=group,
                  dead_letter_topic=unique("dlq"))
    async with running(cfg) as daemon:  # hookd made its topics, and is in its groups
        await wait_ready(daemon)
        code, out, took = await asyncio.to_thread(_check, cfg)
    _keep("healthy", out)
    assert code == 0, out
    assert "FAIL" not in out
    lines = out.splitlines()
    assert any(line.startswith(f"ok    kafka {bootstrap}: connected (PLAINTEXT, client_id hookd)")
               for line in lines)
    assert f"ok    source topic {topic}: 4 partition(s)" in lines
    assert f"ok    consumer group {group}: Stable, 1 member(s)" in lines
    assert f"ok    consumer group {group}.retry: Stable, 1 member(s)" in lines
    assert any(line.startswith("ok    dead-letter topic dlq-") and "4 partition(s)" in line
               for line in lines)
    assert any(line.startswith("ok    retry topic retry-") for line in lines)
    port = receiver.url("/").split(":")[2].split("/")[0]
    assert (f"ok    endpoint http://127.0.0.1:{port} (hook(s) crm, crm-notes): resolves to "
            "127.0.0.1, allowed; direct") in lines
    assert lines[-1] == ("ok    endpoint of hook(s) tenant: host decided per delivery "
                         "(templated URL); direct")
    assert took < 10


async def test_check_connect_names_what_is_missing_or_refused(
        bootstrap: str, tmp_path: Path) -> None:
    absent = unique("absent")
    cfg = _config(tmp_path, bootstrap, absent, [hook("x", "Answered", "http://127.0.0.1:9/")],
                  retry_replication=3)
    data = yaml.safe_load(cfg.read_text())
    data["delivery"]["allow_networks"] = []  # loopback is what the SSRF guard refuses
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out, _ = await asyncio.to_thread(_check, cfg)
    assert code == 1
    lines = out.splitlines()
    assert f"FAIL  source topic {absent}: does not exist" in lines
    assert any(line.startswith("FAIL  dead-letter topic") and "replication 3 on 1 broker(s)"
               in line for line in lines)
    assert lines[-1] == ("FAIL  endpoint http://127.0.0.1:9 (hook(s) x): destination "
                         "127.0.0.1 resolves to 127.0.0.1, which is not allowed "
                         "(delivery.allow_networks)")
    assert await _partitions(bootstrap, absent) is None  # checking created nothing


async def test_check_connect_with_the_broker_stopped(tmp_path: Path) -> None:
    private = Broker(tmp_path / "broker").start()
    try:
        address = private.bootstrap
        topic = await new_topic(address, 1, "gone")
    finally:
        private.stop()
    cfg = _config(tmp_path, address, topic, [hook("x", "Answered", "http://127.0.0.1:9/")])
    code, out, took = await asyncio.to_thread(_check, cfg, "--timeout", "2s")
    _keep("broker-stopped", out)
    assert code == 1
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and out.splitlines()[-1] == fails[0]
    assert fails[0].startswith(f"FAIL  kafka {address}: not reachable (PLAINTEXT, timeout 2s): ")
    assert took < 10


@pytest.mark.skipif(not ON_KAFKA, reason="tansu has no DescribeConfigs (it closes the "
                    "connection): topics there have no retention to read")
async def test_retry_topics_keep_what_they_hold_and_check_names_one_that_could_not(
        bootstrap: str, receiver: Receiver, tmp_path: Path) -> None:
    """The retry topics hookd creates keep their records at least twice their delay and
    never less than a week, compaction off; `check --connect` fails a retry topic made by
    hand whose retention is shorter than that."""
    topic = await new_topic(bootstrap, 2, "ret")
    cfg = _config(tmp_path, bootstrap, topic, [hook("x", "Answered", receiver.url("/x"))])
    prefix = yaml.safe_load(cfg.read_text())["kafka"]["retry_topic_prefix"]
    async with running(cfg) as daemon:
        await wait_ready(daemon)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        made = await topic_configs(admin, [f"{prefix}.1s"])
    finally:
        await admin.close()
    assert made == {f"{prefix}.1s": {"cleanup.policy": "delete", "retention.ms": "604800000",
                                     "retention.bytes": "-1"}}

    (tmp_path / "short").mkdir()
    short = _config(tmp_path / "short", bootstrap, topic, [hook("x", "Answered",
                                                                 receiver.url("/x"))])
    short_prefix = yaml.safe_load(short.read_text())["kafka"]["retry_topic_prefix"]
    await create_topic(bootstrap, f"{short_prefix}.1s", 4,
                       configs={"retention.ms": "1500", "cleanup.policy": "delete"})
    code, out, _ = await asyncio.to_thread(_check, short)
    _keep("short-retention", out)
    assert code == 1
    assert (f"FAIL  retry topic {short_prefix}.1s: could drop a parked delivery before it is "
            "due: retention.ms=1500 is under twice the tier's delay (2000 ms)") in out, out
