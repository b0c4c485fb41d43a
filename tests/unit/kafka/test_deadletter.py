"""hookd.kafka.deadletter: the dead-letter record is exactly the shape SPEC §3 shows."""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson
import pytest

from hookd.delivery.retries import ErrorKind
from hookd.kafka.deadletter import DeadLetter, KafkaDeadLetters, Source, rfc3339

TOP_KEYS = {"hook", "event_id", "event", "payload", "raw", "error", "attempts",
            "first_attempt_at", "last_attempt_at", "source"}
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
FIRST = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z
LAST = 1_700_000_123.5


def letter(**changes: Any) -> DeadLetter:
    fields: dict[str, Any] = dict(
        hook="crm-answered", event_id="ev-1", event="Answered",
        payload={"event": "Answered", "queue_id": 7, "agent": {"name": "Ann"}}, raw=None,
        kind=ErrorKind.HTTP_STATUS, status=404, message="HTTP 404: no such call", attempts=4,
        first_attempt_at=FIRST, last_attempt_at=LAST,
        source=Source("cc.events", 0, 1234), key=b"member-42")
    fields.update(changes)
    return DeadLetter(**fields)


def test_delivery_failure_record_is_the_spec_shape() -> None:
    doc = orjson.loads(letter().to_json())
    assert doc == {
        "hook": "crm-answered",
        "event_id": "ev-1",
        "event": "Answered",
        "payload": {"event": "Answered", "queue_id": 7, "agent": {"name": "Ann"}},
        "raw": None,
        "error": {"kind": "http_status", "status": 404, "message": "HTTP 404: no such call"},
        "attempts": 4,
        "first_attempt_at": "2023-11-14T22:13:20.250Z",
        "last_attempt_at": "2023-11-14T22:15:23.500Z",
        "source": {"topic": "cc.events", "partition": 0, "offset": 1234},
    }
    assert set(doc) == TOP_KEYS  # the key is the record's key, not a field
    assert set(doc["error"]) == {"kind", "status", "message"}
    assert set(doc["source"]) == {"topic", "partition", "offset"}


@pytest.mark.parametrize(("kind", "text"), [
    (ErrorKind.HTTP_STATUS, "http_status"),
    (ErrorKind.TIMEOUT, "timeout"),
    (ErrorKind.CONNECT, "connect"),
    (ErrorKind.RENDER, "render"),
    (ErrorKind.BLOCKED, "blocked"),
    (ErrorKind.DECODE, "decode"),
])
def test_error_kind_strings(kind: ErrorKind, text: str) -> None:
    doc = orjson.loads(letter(kind=kind, status=None).to_json())
    assert doc["error"] == {"kind": text, "status": None, "message": "HTTP 404: no such call"}


def test_render_failure_has_no_attempts_and_no_times() -> None:
    doc = orjson.loads(letter(kind=ErrorKind.RENDER, status=None, message="url template: x",
                              attempts=0, first_attempt_at=None, last_attempt_at=None).to_json())
    assert doc["attempts"] == 0
    assert doc["first_attempt_at"] is None and doc["last_attempt_at"] is None
    assert doc["error"]["kind"] == "render"
    assert doc["hook"] == "crm-answered" and doc["payload"] is not None


@pytest.mark.parametrize("raw", [b"\xff\xfe not utf-8", b"[1, 2, 3]", b"", b"{\"no\": \"name\"}"])
def test_decode_record(raw: bytes) -> None:
    dl = DeadLetter(None, None, None, None, raw, ErrorKind.DECODE, None, "value is not JSON", 0,
                    None, None, Source("cc.events", 3, 99), b"k")
    doc = orjson.loads(dl.to_json())
    assert set(doc) == TOP_KEYS
    assert doc["hook"] is None
    assert doc["payload"] is None
    assert doc["event"] is None
    assert doc["raw"] == base64.b64encode(raw).decode()
    assert base64.b64decode(doc["raw"], validate=True) == raw
    assert doc["error"] == {"kind": "decode", "status": None, "message": "value is not JSON"}
    assert doc["source"] == {"topic": "cc.events", "partition": 3, "offset": 99}


@pytest.mark.parametrize("ts", [0.001, 1.0, 1_700_000_000.0, 1_700_000_000.999, 4_102_444_800.5])
def test_times_are_rfc3339_utc_with_z(ts: float) -> None:
    text = rfc3339(ts)
    assert RFC3339_Z.match(text), text
    assert "+00:00" not in text
    doc = orjson.loads(letter(first_attempt_at=ts, last_attempt_at=ts).to_json())
    assert doc["first_attempt_at"] == doc["last_attempt_at"] == text


def test_rfc3339_value() -> None:
    assert rfc3339(0.5) == "1970-01-01T00:00:00.500Z"
    assert rfc3339(1_700_000_000) == "2023-11-14T22:13:20.000Z"


def test_payload_with_unicode_and_nesting_survives() -> None:
    payload = {"name": "Zoë 😀", "nested": {"list": [1, 2.5, None, True]}}
    assert orjson.loads(letter(payload=payload).to_json())["payload"] == payload


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None,
                            headers: list[tuple[str, bytes]] | None = None) -> None:
        self.sent.append((topic, value, key, headers or []))


async def test_kafka_dead_letters_publish_key_value_and_headers() -> None:
    producer = FakeProducer()
    sink = KafkaDeadLetters(producer, "hookd.dlq")
    await sink.publish(letter())
    await sink.publish(DeadLetter(None, None, None, None, b"x", ErrorKind.DECODE, None, "bad", 0,
                                  None, None, Source("cc.events", 0, 1), None))
    (topic, value, key, headers), decode = producer.sent
    assert topic == "hookd.dlq"
    assert key == b"member-42"  # the original record's key
    assert orjson.loads(value) == orjson.loads(letter().to_json())
    assert headers == [("hookd-error-kind", b"http_status"), ("hookd-hook", b"crm-answered")]
    assert decode[2] is None
    assert decode[3] == [("hookd-error-kind", b"decode")]


def test_rfc3339_writes_what_datetime_writes() -> None:
    """Written by hand for speed: the same text as datetime's, to the millisecond cut,
    across seconds, at the rounding edges and in the order times come."""
    import random
    from datetime import UTC, datetime

    rng = random.Random(7)
    times = ([rng.uniform(0, 4e9) for _ in range(20000)]
             + [1_700_000_000 + n / 2000 for n in range(4000)]  # half-millisecond steps
             + [rng.randrange(4 * 10**9) + 0.9999995 + d for d in (0.0, 1e-7, -1e-7)
                for _ in range(2000)])
    for ts in times:
        expected = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
        assert rfc3339(ts) == expected.replace("+00:00", "Z"), ts
