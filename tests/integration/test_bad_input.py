"""Bad input never stops the daemon: the corpus of tests/data/bad_records through a running
daemon (real broker, real receiver). Undecodable records are dead-lettered byte for byte
with error.kind "decode"; wrongly typed fields are filtered out; valid events produced
afterwards are delivered and every partition's committed offset reaches its end."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from hookd.requests.signing import webhook_id
from tests.integration.harness import (
    committed,
    get_json,
    hook,
    new_topic,
    read_topic,
    running,
    unique,
    until,
    wait_ready,
    write_config,
)
from tests.integration.receiver import Receiver

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_records"
PARTS = 4
BIG = 10 * 1024 * 1024  # the 10 MiB record
GATE = hook("gate", "Joined", "http://127.0.0.1:1/replaced", filter={"queue_id": {"gte": 5}})

# (value, headers, expected): generated here rather than kept as files
DEEP_5000 = b'{"a":' * 5000 + b"1" + b"}" * 5000


def _corpus(prefix: str) -> list[tuple[str, bytes]]:
    files = sorted(p for p in CORPUS.iterdir() if p.name.startswith(prefix))
    return [(p.name, p.read_bytes()) for p in files]


Sent = tuple[int, int]  # (partition, offset)


async def _send(bootstrap: str, topic: str,
                records: Sequence[tuple[int, bytes | None, list[tuple[str, bytes]] | None]],
                ) -> list[Sent]:
    """One record per request (tansu's end offsets need that), to an explicit partition;
    the producer accepts 32 MiB requests (aiokafka's default max_request_size is 1 MiB)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                max_request_size=32 * 1024 * 1024)
    await producer.start()
    try:
        sent = []
        for i, (partition, value, headers) in enumerate(records):
            md = await producer.send_and_wait(topic, value, key=f"bad-{i}".encode(),
                                              partition=partition, headers=headers)
            sent.append((md.partition, md.offset))
        return sent
    finally:
        await producer.stop()


async def _wait_committed(bootstrap: str, group: str, topic: str, ends: dict[int, int],
                          timeout: float = 20.0) -> dict[int, int]:
    """Until the group's committed offset of every partition is its end offset."""
    offsets: dict[int, int] = {}
    try:
        async with asyncio.timeout(timeout):
            while True:
                offsets = await committed(bootstrap, group, topic, PARTS)
                if offsets == ends:
                    return offsets
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"committed {offsets}, end offsets {ends}") from None


def _ends(sent: Sequence[Sent]) -> dict[int, int]:
    ends = dict.fromkeys(range(PARTS), -1)
    for partition, offset in sent:
        ends[partition] = max(ends[partition], offset + 1)
    return ends


def test_the_corpus_is_complete() -> None:
    """The README's table and the files agree, and nothing big was committed."""
    readme = (CORPUS / "README.md").read_text()
    names = [p.name for p in CORPUS.iterdir() if p.name != "README.md"]
    assert len(names) >= 30
    for name in names:
        assert name.startswith(("decode-", "skip-")), name
        assert f"`{name}`" in readme, f"{name} is not described in README.md"
        assert (CORPUS / name).stat().st_size < 4096, f"{name} is big: generate it instead"
    for name in ("decode-invalid-utf8.bin", "decode-json-array.json", "decode-json-number.json",
                 "decode-json-string.json", "decode-missing-event.json",
                 "decode-empty-event.json", "decode-event-number.json",
                 "decode-cloudevent-no-type.json", "decode-cloudevent-data-array.json",
                 "decode-not-json.bin", "skip-queue-id-string.json"):
        assert name in names


async def test_bad_records_are_dead_lettered_and_consumption_goes_on(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    topic = await new_topic(broker.bootstrap, PARTS, "bad")
    dlq, group = unique("dlq"), unique("g")
    gate = {**GATE, "request": {"url": receiver.url("/gate")}}
    cfg = write_config(tmp_path, broker.bootstrap, topic, [gate], dlq=dlq, group=group)

    undecodable: list[tuple[str, bytes | None, list[tuple[str, bytes]] | None]] = [
        (name, value, None) for name, value in _corpus("decode-")]
    undecodable += [
        ("generated: nested 5,000 levels", DEEP_5000, None),
        ("generated: tombstone", None, None),
        ("generated: binary CloudEvent, value an array", b'[{"queue_id": 7}]',
         [("ce_specversion", b"1.0"), ("ce_type", b"Joined"), ("ce_id", b"ce-bin-array")]),
    ]
    skipped = _corpus("skip-")
    corpus = undecodable + [(name, value, None) for name, value in skipped]
    # round-robin over the partitions, so that every partition holds garbage
    records = [(i % PARTS, value, headers) for i, (_, value, headers) in enumerate(corpus)]

    async with running(cfg) as daemon:
        await wait_ready(daemon)
        sent = await _send(broker.bootstrap, topic, records)
        letters = await read_topic(broker.bootstrap, dlq, len(undecodable), settle=1.0)
        # the corpus is through; now one valid event per partition, after the garbage
        valid = [(p, orjson.dumps({"event": "Joined", "id": f"after-{p}", "queue_id": 7}),
                  None) for p in range(PARTS)]
        sent += await _send(broker.bootstrap, topic, valid)
        await receiver.wait_for(PARTS, "/gate")
        await _wait_committed(broker.bootstrap, group, topic, _ends(sent))
        await until(lambda: daemon.dispatcher.counters.events == len(sent))  # type: ignore[union-attr]
        counters = daemon.dispatcher.counters  # type: ignore[union-attr]
        status, health = await get_json(f"http://127.0.0.1:{daemon.health.port}/healthz")  # type: ignore[union-attr]
        letters = await read_topic(broker.bootstrap, dlq, len(undecodable), settle=0.5)

    # every undecodable record, and nothing else, is on the dead-letter topic, byte for byte
    by_source = {}
    for letter in letters:
        rec = orjson.loads(letter.value)
        src = rec["source"]
        assert src["topic"] == topic
        by_source[(src["partition"], src["offset"])] = (letter, rec)
    assert len(letters) == len(by_source) == len(undecodable)
    for i, (name, value, _) in enumerate(undecodable):
        letter, rec = by_source.pop(sent[i])
        assert rec["error"]["kind"] == "decode", name
        assert rec["error"]["message"], name
        assert rec["hook"] is None and rec["payload"] is None, name
        assert (None if rec["raw"] is None else base64.b64decode(rec["raw"], validate=True)
                ) == value, name  # a tombstone: raw null
        assert rec["attempts"] == 0, name
        assert letter.key == f"bad-{i}".encode(), name
        assert dict(letter.headers)["hookd-error-kind"] == b"decode", name
    assert by_source == {}

    # the wrongly typed events were decoded, filtered out: nothing sent for them
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == sorted(
        webhook_id(f"after-{p}", "gate") for p in range(PARTS))
    assert counters.decode_errors == counters.dead_lettered == len(undecodable)
    assert counters.delivered == PARTS and counters.stats.total("dead_lettered") == 0
    assert status == 200 and health["counters"]["dead_lettered"] == len(undecodable)
    ages = health["event_age_ms"]  # every record taken, the undecodable ones too, has its age
    assert ages["records"] == counters.events and 0 <= ages["p50"] <= ages["p99"] <= ages["max"]


async def test_a_10_mib_undecodable_record_is_dead_lettered_and_the_partition_moves_on(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    # Kafka refuses records over 1 MiB unless the topic allows more: this one does, as a
    # source topic of big CTI payloads would (the dead-letter topic keeps the default)
    topic = await new_topic(broker.bootstrap, PARTS, "bad",
                            {"max.message.bytes": str(BIG + 1024 * 1024)})
    dlq, group = unique("dlq"), unique("g")
    gate = {**GATE, "request": {"url": receiver.url("/gate")}}
    cfg = write_config(tmp_path, broker.bootstrap, topic, [gate], dlq=dlq, group=group,
                       shutdown_timeout="1s")
    big = b"\xff" + b"not json " * (BIG // 9) + b"!" * (BIG - 1 - 9 * (BIG // 9))
    assert len(big) == BIG
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        # the broker accepts the record: it is on the topic for the daemon to deal with
        sent = await _send(broker.bootstrap, topic, [
            (0, big, None),
            (0, orjson.dumps({"event": "Joined", "id": "after-big", "queue_id": 7}), None)])
        await receiver.wait_for(1, "/gate")  # a later record of the same partition flows
        letters = await read_topic(broker.bootstrap, dlq, 1, timeout=10, settle=0.2)
        await _wait_committed(broker.bootstrap, group, topic, _ends(sent), timeout=6)
    [letter] = letters
    rec = orjson.loads(letter.value)
    assert rec["error"]["kind"] == "decode"
    assert rec["source"] == {"topic": topic, "partition": 0, "offset": sent[0][1]}
    # either all of it, or a documented truncation that says how big the record was
    raw = base64.b64decode(rec["raw"])
    assert raw, "the dead letter carries none of the record"
    assert raw == big or (big.startswith(raw) and str(BIG) in letter.value.decode())
    assert daemon.dispatcher.counters.delivered == 1  # type: ignore[union-attr]


async def test_an_event_nested_300_deep_is_final_and_its_partition_commits(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    topic = await new_topic(broker.bootstrap, PARTS, "bad")
    dlq, group = unique("dlq"), unique("g")
    # the default body: the payload as JSON
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("all", "Joined", receiver.url("/all"))], dlq=dlq, group=group,
                       shutdown_timeout="1s")
    deep = b'{"event": "Joined", "id": "deep", "nested": ' + b'{"a":' * 300 + b"1" + \
        b"}" * 300 + b"}"
    assert orjson.loads(deep)["id"] == "deep"  # decodable
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        sent = await _send(broker.bootstrap, topic, [
            (0, deep, None), (0, orjson.dumps({"event": "Joined", "id": "after-deep"}), None)])
        await receiver.wait_for(1, "/all")
        await _wait_committed(broker.bootstrap, group, topic, _ends(sent), timeout=6)
        letters = await read_topic(broker.bootstrap, dlq, 1, timeout=10, settle=0.2)
        counters = daemon.dispatcher.counters  # type: ignore[union-attr]
    # the deep event decodes but cannot be written back out (orjson writes 254 levels at
    # most): a render error, dead-lettered; the event after it is delivered
    [letter] = letters
    rec = orjson.loads(letter.value)
    assert rec["error"]["kind"] == "render"
    assert rec["hook"] == "all"
    assert rec["source"] == {"topic": topic, "partition": 0, "offset": sent[0][1]}
    assert [r.headers["webhook-id"] for r in receiver.requests] == [
        webhook_id("after-deep", "all")]
    assert counters.delivered == 1 and counters.dead_lettered == 1
