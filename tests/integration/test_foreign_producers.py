"""Records written by a foreign client (librdkafka, through confluent-kafka) reach a running
hookd (in this process, real broker, real receiver): every codec, keys, headers, bad records
inside a librdkafka batch, and CloudEvents made by the official SDK in both Kafka bindings.

Issue 17: librdkafka producers with compression.type snappy/lz4/zstd stopped every delivery
(aiokafka lacked the codec libraries). Every other integration test writes with aiokafka.

`pytest -s` prints the codec table (codec x delivered/produced) when the module ends.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from cloudevents.core.bindings.kafka import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent as CoreCloudEvent
from cloudevents.v1.http import CloudEvent as V1CloudEvent
from cloudevents.v1.kafka import to_binary, to_structured

from hookd.requests.signing import webhook_id
from hookd.service.daemon import Daemon
from tests.integration import rdkafka
from tests.integration.harness import (
    committed,
    hook,
    read_topic,
    running,
    unique,
    until,
    write_config,
)
from tests.integration.rdkafka import CODECS, Placed, RdRecord
from tests.integration.receiver import Receiver

PARTITIONS = 4  # of conftest's `topic`
PER_CODEC = 20
PAD = "call-center " * 20  # compressible, so that every codec shrinks the batch
# what each delivery says about its record: fields, name, and meta as templates see it
BODY = ('{"id": {{ id|tojson }}, "n": {{ n }}, "codec": {{ codec|tojson }},'
        ' "event": {{ event|tojson }}, "key": {{ meta.key|tojson }},'
        ' "headers": {{ meta.headers|tojson }}, "partition": {{ meta.partition }},'
        ' "offset": {{ meta.offset }}}')
DLQ_FIELDS = {"hook", "event_id", "event", "payload", "raw", "error", "attempts",
              "first_attempt_at", "last_attempt_at", "source"}  # SPEC.md §3

TABLE: dict[str, dict[str, Any]] = {}  # codec -> produced, delivered, batches on the wire


def _table() -> str:
    rows = ["| codec | produced | delivered | batches (records each) | codec on the wire |",
            "|---|---|---|---|---|"]
    for codec in CODECS:
        if codec in TABLE:
            t = TABLE[codec]
            rows.append(f"| {codec} | {t['produced']} | {t['delivered']} | "
                        f"{t.get('batches', '-')} | {t.get('wire', '-')} |")
    return "\n".join(rows)


@pytest.fixture(scope="module", autouse=True)
def codec_table() -> Iterator[None]:
    yield
    if TABLE:
        print(f"\nlibrdkafka -> hookd, {PER_CODEC} records per codec:\n{_table()}")


def _settled(daemon: Daemon) -> bool:
    assert daemon.source is not None
    tracker = daemon.source.tracker
    return tracker.committable() == {} and tracker.in_flight() == 0


def _ends(placed: Sequence[Placed]) -> dict[int, int]:
    """The committed offsets a group reaches once it took every placed record."""
    ends = dict.fromkeys(range(PARTITIONS), -1)
    for partition, offset in placed:
        ends[partition] = max(ends[partition], offset + 1)
    return ends


async def _wait_committed(bootstrap: str, group: str, topic: str, ends: dict[int, int],
                          timeout: float = 10.0) -> None:
    """Until the group's committed offset of every partition is `ends`'s."""
    offsets: dict[int, int] = {}
    try:
        async with asyncio.timeout(timeout):
            while offsets != ends:
                offsets = await committed(bootstrap, group, topic, PARTITIONS)
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"committed {offsets}, expected {ends}") from None


# ---------------------------------------------------------------------------- codecs

def _codec_record(codec: str, i: int) -> tuple[RdRecord, dict[str, Any]]:
    """Record i of a codec's run (keys set on even i, null on odd) and the event it is."""
    event = {"event": "Joined", "id": f"{codec}-{i}", "n": i, "codec": codec, "pad": PAD}
    key = f"call-{i}".encode() if i % 2 == 0 else None
    headers = (("x-codec", codec.encode()), ("x-n", str(i).encode()))
    return RdRecord(orjson.dumps(event), key, headers), event


@pytest.mark.parametrize("codec", CODECS)
async def test_librdkafka_batches_of_every_codec_are_delivered(
        codec: str, broker: Any, topic: str, receiver: Receiver, tmp_path: Path) -> None:
    made = [_codec_record(codec, i) for i in range(PER_CODEC)]
    placed = await rdkafka.produce(broker.bootstrap, topic, [r for r, _ in made],
                                   compression=codec)
    group = unique("g")
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("h", "joined", receiver.url("/in"), request={"body": BODY})],
                       group=group)
    TABLE[codec] = {"produced": PER_CODEC, "delivered": 0}
    try:
        async with running(cfg) as daemon:
            await receiver.wait_for(PER_CODEC, timeout=20)
            await until(lambda: _settled(daemon), 10)
    finally:
        TABLE[codec]["delivered"] = len(receiver.requests)

    # every record, once, exactly as written: fields, key (null or set), headers, offset
    expected = {}
    for (rec, event), (partition, offset) in zip(made, placed, strict=True):
        expected[event["id"]] = {
            "id": event["id"], "n": event["n"], "codec": codec, "event": "Joined",
            "key": rec.key.decode() if rec.key is not None else None,
            "headers": {"x-codec": codec, "x-n": str(event["n"])},
            "partition": partition, "offset": offset}
    got = {}
    for req in receiver.requests:
        body = orjson.loads(req.body)
        assert req.headers["webhook-id"] == webhook_id(body["id"], "h")
        got[body["id"]] = body
    assert len(receiver.requests) == PER_CODEC
    assert got == expected
    assert await committed(broker.bootstrap, group, topic, PARTITIONS) == _ends(placed)

    # the records really were on the wire in that codec, several to a batch
    batches = await rdkafka.wire_batches(broker.bootstrap, topic, PER_CODEC)
    TABLE[codec]["batches"] = f"{len(batches)} ({', '.join(str(b.records) for b in batches)})"
    TABLE[codec]["wire"] = ", ".join(sorted({b.codec for b in batches}))
    assert {b.codec for b in batches} == {codec}
    assert sum(b.records for b in batches) == PER_CODEC
    assert max(b.records for b in batches) > 1


# ---------------------------------------------------------------------- bad records

TOMBSTONE = "record has no value (tombstone)"
NOT_JSON = "value is not UTF-8 JSON: "
GOOD_BODY = '{"id": {{ id|tojson }}, "key": {{ meta.key|tojson }}}'


def _good(i: int, key: bytes | None = None) -> tuple[bytes | None, bytes | None, str | None]:
    return orjson.dumps({"event": "Joined", "id": f"good-{i}"}), key, None


# per scenario, the records of one librdkafka batch, in offset order: (value, key, the
# dead letter's message if the record is bad); each ends with a bad record, so the
# committed offset has to go past it
BAD_BATCHES: dict[str, list[tuple[bytes | None, bytes | None, str | None]]] = {
    "tombstones-and-empty-values": [
        _good(0, b"k1"), (None, b"k1", TOMBSTONE), _good(1, b"k1"), (b"", None, NOT_JSON),
        (None, None, TOMBSTONE), _good(2), (b"", b"k2", NOT_JSON), _good(3, b"k2"),
        (None, b"k3", TOMBSTONE)],
    "not-json-not-object-no-name": [
        _good(0, b"k1"), (b"not json", b"k1", NOT_JSON), _good(1, b"k1"),
        (b"[1, 2]", None, "value is JSON list, not an object"),
        (b'"Joined"', b"k2", "value is JSON str, not an object"), _good(2, b"k2"),
        (b'{"no_name": 1}', None, "no event name (expected a non-empty string at 'event')"),
        _good(3), (b"\xff\xfe{}", b"k3", NOT_JSON)],
}


@pytest.mark.parametrize("scenario", BAD_BATCHES)
async def test_bad_records_in_a_librdkafka_batch_are_dead_lettered_and_the_rest_flows(
        scenario: str, broker: Any, topic: str, receiver: Receiver, tmp_path: Path) -> None:
    rows = BAD_BATCHES[scenario]
    placed = await rdkafka.produce(broker.bootstrap, topic,
                                   [RdRecord(v, k, partition=0) for v, k, _ in rows],
                                   compression="zstd")
    dlq, group = unique("dlq"), unique("g")
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("h", "Joined", receiver.url("/ok"), request={"body": GOOD_BODY})],
                       dlq=dlq, group=group)
    good = [(v, k) for v, k, message in rows if message is None]
    bad = [(row, at) for row, at in zip(rows, placed, strict=True) if row[2] is not None]
    async with running(cfg):
        await receiver.wait_for(len(good), timeout=20)
        letters = await read_topic(broker.bootstrap, dlq, len(bad), settle=1.0)
        await _wait_committed(broker.bootstrap, group, topic, _ends(placed))

    # the good records, each once and with its key, around and after the bad ones
    keys = {orjson.loads(v or b"")["id"]: k.decode() if k else None for v, k in good}
    bodies = [orjson.loads(r.body) for r in receiver.requests]
    assert len(bodies) == len(good)
    assert {b["id"]: b["key"] for b in bodies} == keys

    # every bad record, and nothing else, dead-lettered in SPEC.md's format
    by_source = {}
    for letter in letters:
        rec = orjson.loads(letter.value)
        assert set(rec) == DLQ_FIELDS, rec
        by_source[(rec["source"]["partition"], rec["source"]["offset"])] = (letter, rec)
    assert len(letters) == len(by_source) == len(bad)
    for (value, key, message), (partition, offset) in bad:
        letter, rec = by_source[(partition, offset)]
        assert rec["source"] == {"topic": topic, "partition": partition, "offset": offset}
        assert rec["error"]["kind"] == "decode" and rec["error"]["status"] is None
        assert message is not None and rec["error"]["message"].startswith(message), rec
        assert (rec["hook"], rec["event"], rec["event_id"], rec["payload"]) == (
            None, None, None, None)
        # a tombstone has no value: raw null; an empty value: raw ""
        assert (None if rec["raw"] is None else base64.b64decode(rec["raw"], validate=True)
                ) == value
        assert rec["attempts"] == 0
        assert letter.key == key
        assert dict(letter.headers)["hookd-error-kind"] == b"decode"

    # they shared one compressed librdkafka batch
    batches = await rdkafka.wire_batches(broker.bootstrap, topic, len(rows))
    assert [(b.codec, b.records) for b in batches] == [("zstd", len(rows))]


# ---------------------------------------------------------------------- CloudEvents

CE_BODY = ('{"event": {{ event|tojson }}, "payload": {{ payload|tojson }},'
           ' "key": {{ meta.key|tojson }}}')


def _sdk_message(api: str, mode: str, attributes: dict[str, Any], data: Any) -> RdRecord:
    """A record as the official SDK's Kafka binding makes it: its older API
    (cloudevents.v1, the `cloudevents.kafka` of SDK 1.x) or the newer one (cloudevents.core)."""
    msg: Any
    if api == "v1":  # (v1's to_binary needs datacontenttype: it reads event["..."])
        event = V1CloudEvent({"datacontenttype": "application/json", **attributes}, data)
        msg = to_binary(event) if mode == "binary" else to_structured(event)
    else:
        core = CoreCloudEvent(attributes=dict(attributes), data=data)
        msg = to_binary_event(core) if mode == "binary" else to_structured_event(core)
    key = msg.key.encode() if isinstance(msg.key, str) else msg.key
    return RdRecord(bytes(msg.value), key, tuple(msg.headers.items()))


CE_CASES = [(api, mode) for api in ("v1", "core") for mode in ("binary", "structured")]


async def test_cloudevents_of_the_sdk_in_both_bindings(
        broker: Any, topic: str, receiver: Receiver, tmp_path: Path) -> None:
    made: list[tuple[str, dict[str, Any], RdRecord]] = []  # (hook, expected, record)
    for n, (api, mode) in enumerate(CE_CASES):
        ce_id, data = f"ce-{api}-{mode}", {"uuid": f"c-{n}", "duration": 185 + n,
                                           "nested": {"mode": mode}}
        rec = _sdk_message(api, mode, {"type": f"Call:Hangup.{api}.{mode}", "source": "/pbx",
                                       "id": ce_id, "partitionkey": f"call-{n}"}, data)
        made.append((ce_id, {"event": f"Call:Hangup.{api}.{mode}", "payload": data,
                             "key": f"call-{n}"}, rec))
    # a plain event that happens to carry ce_type/ce_id headers (no ce_specversion)
    plain = RdRecord(orjson.dumps({"event": "Joined", "id": "plain-1", "queue_id": 7}),
                     b"q-1", (("ce_type", b"Call:Hangup.stray"), ("ce_id", b"stray-id")))
    # binary mode whose data is text: a decode error, dead-lettered
    text = _sdk_message("core", "binary", {"type": "Call:Hangup.text", "source": "/pbx",
                                           "id": "ce-text", "datacontenttype": "text/plain"},
                        "hello")
    # structured mode with bytes data (the SDK writes data_base64): a decode error too
    octets = _sdk_message("core", "structured", {"type": "Call:Hangup.octets",
                                                 "source": "/pbx", "id": "ce-octets"},
                          b"\x00\x01")
    # each CloudEvent twice (a producer's retry): one webhook-id, from the CloudEvent id
    records = [rec for _, _, rec in made] * 2 + [plain, text, octets]
    dlq = unique("dlq")
    cfg = write_config(tmp_path, broker.bootstrap, topic, [
        hook("calls", "call:hangup.*", receiver.url("/calls"), request={"body": CE_BODY}),
        hook("joined", "Joined", receiver.url("/joined"), request={"body": CE_BODY}),
    ], dlq=dlq)
    placed = await rdkafka.produce(broker.bootstrap, topic, records)
    async with running(cfg) as daemon:
        await receiver.wait_for(2 * len(made), "/calls", timeout=20)
        await receiver.wait_for(1, "/joined", timeout=5)
        letters = await read_topic(broker.bootstrap, dlq, 2, settle=1.0)
        await until(lambda: _settled(daemon), 10)

    # name from type, payload = data, key from partitionkey, webhook-id from the id (stable)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for req in receiver.at("/calls"):
        by_id.setdefault(req.headers["webhook-id"], []).append(orjson.loads(req.body))
    assert len(receiver.at("/calls")) == 2 * len(made)
    assert by_id == {webhook_id(ce_id, "calls"): [expected, expected]
                     for ce_id, expected, _ in made}
    offset_ids = {webhook_id(f"{topic}-{p}-{o}", "calls") for p, o in placed}
    assert not offset_ids & set(by_id)  # (the fallback id would differ per copy)

    # ce_type without ce_specversion: a plain event, named and identified by its payload
    [joined] = receiver.at("/joined")
    assert orjson.loads(joined.body) == {
        "event": "Joined", "payload": {"event": "Joined", "id": "plain-1", "queue_id": 7},
        "key": "q-1"}
    assert joined.headers["webhook-id"] == webhook_id("plain-1", "joined")

    # the two CloudEvents whose data is not JSON, dead-lettered as decode, saying why
    dead = {(r["source"]["partition"], r["source"]["offset"]): r
            for r in (orjson.loads(letter.value) for letter in letters)}
    assert len(letters) == len(dead) == 2
    for (partition, offset), raw, reason in [
            (placed[-2], text.value, "'text/plain'"),
            (placed[-1], octets.value, "binary (data_base64)")]:
        rec = dead[(partition, offset)]
        assert rec["source"]["topic"] == topic
        assert rec["error"]["kind"] == "decode"
        assert rec["error"]["message"] == (f"CloudEvent data is {reason}, not JSON: only JSON "
                                           "object data can be a payload")
        assert base64.b64decode(rec["raw"]) == raw
