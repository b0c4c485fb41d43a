"""hookd.cli.replay: from a dead letter (as hookd.kafka.deadletter writes it) back to a parked
delivery, and which letters are skipped and why. The Kafka side is in
tests/integration/test_retries.py."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import Any

import orjson
import pytest

from hookd.cli.replay import ReplayReport, _one, letter_to_parked
from hookd.delivery.retries import ErrorKind
from hookd.kafka.deadletter import DeadLetter, Source
from hookd.kafka.parking import ParkingLot
from hookd.pipeline.runtime import Runtime, load_config
from tests.unit.conftest import WriteConfig


def letter(**changes: Any) -> DeadLetter:
    return replace(DeadLetter("crm", "ev-1", "Answered", {"event": "Answered", "call": "c-1"},
                              None, ErrorKind.HTTP_STATUS, 500, "HTTP 500: no", 3, 1.0, 2.0,
                              Source("cc.events", 1, 7), b"c-1"), **changes)


def slim() -> DeadLetter:
    """A letter too big to keep whole: its payload left out, with a note."""
    return letter(payload={"event": "Answered", "blob": "x" * 5000}).slimmed(1000)


def test_a_letter_becomes_the_delivery_it_was() -> None:
    parked = letter_to_parked(orjson.loads(letter().to_json()), b"c-1")
    assert (parked.hook, parked.event.name, parked.event.id) == ("crm", "Answered", "ev-1")
    assert parked.event.payload == {"event": "Answered", "call": "c-1"}
    assert (parked.event.meta.topic, parked.event.meta.partition,
            parked.event.meta.offset, parked.event.meta.key) == ("cc.events", 1, 7, "c-1")
    assert (parked.key, parked.attempts) == (b"c-1", 0)


def test_a_letter_whose_event_was_left_out_is_not_replayed_as_an_empty_event() -> None:
    doc = orjson.loads(slim().to_json())
    assert doc["payload"] is None
    with pytest.raises(ValueError, match="not kept in the letter"):
        letter_to_parked(doc, b"c-1")


@dataclass
class Record:
    value: bytes
    key: bytes | None = b"c-1"
    offset: int = 0


class Producer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send_and_wait(self, topic: str, value: bytes, key: Any = None,
                            headers: Any = None) -> None:
        self.sent.append(value)


@pytest.fixture
def runtime(write_config: WriteConfig) -> Runtime:
    return load_config(write_config("""
        hooks:
          - id: crm
            event: Answered
            request: {url: "http://127.0.0.1/crm"}
        """).main, environ={})


@pytest.mark.parametrize(("value", "why"), [
    (b"not json", ""),
    (b"[1, 2]", ""),
    (orjson.dumps({"hook": "gone", "source": {}}), ""),
    (slim().to_json(), "not kept in the letter"),
    (orjson.dumps({"hook": "crm"}), "source"),  # not a letter hookd wrote
])
async def test_what_cannot_be_replayed_is_skipped_and_said(runtime: Runtime, value: bytes,
                                                           why: str) -> None:
    producer, out, report = Producer(), io.StringIO(), ReplayReport()
    lot = ParkingLot(producer, None, "hookd.retry", 4)
    await lot.ensure_tiers([30.0])
    await _one(Record(value), runtime, None, False, lot, report, out)
    assert (report.replayed, report.skipped, producer.sent) == (0, 1, [])
    assert why in out.getvalue()


async def test_a_replayable_letter_is_parked_once(runtime: Runtime) -> None:
    producer, out, report = Producer(), io.StringIO(), ReplayReport()
    lot = ParkingLot(producer, None, "hookd.retry", 4)
    await lot.ensure_tiers([30.0])
    await _one(Record(letter().to_json()), runtime, None, False, lot, report, out)
    await _one(Record(letter().to_json()), runtime, "other-hook", False, lot, report, out)
    assert (report.replayed, report.skipped, len(producer.sent)) == (1, 1, 1)
    assert "replayed: hook=crm event=Answered event_id=ev-1" in out.getvalue()
