"""hookd.kafka.outcomelog: what OutcomeLog writes (topic, key, headers), and a gathered
parking's record, which waits for the group without owning it."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from hookd.delivery.attempts import Job
from hookd.delivery.retries import ErrorKind, Outcome, Verdict
from hookd.events.decode import Event, Meta
from hookd.kafka.outcomelog import OutcomeLog
from hookd.kafka.parking import Parked

EVENT = Event("Answered", "call-7", {"event": "Answered"}, Meta("cc.events", 1, 9, None,
                                                                1_700_000_000_000, {}))
CLOSED = Outcome(Verdict.PARK, ErrorKind.CIRCUIT_OPEN, None, "circuit open")


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, Any]] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None,
                            headers: Any = None) -> None:
        self.sent.append((topic, value, key, headers))


async def test_a_record_is_keyed_by_event_id_with_its_outcome_and_hook_in_headers() -> None:
    producer = Producer()
    log = OutcomeLog(producer, "log", clock=lambda: 1_700_000_002.0)
    await log.delivered(Job("crm", EVENT, b"member-1", attempts=1,
                            first_attempt_at=1_700_000_001.0), 204)
    [(topic, value, key, headers)] = producer.sent
    assert (topic, key) == ("log", b"call-7")
    assert headers == [("hookd-outcome", b"delivered"), ("hookd-hook", b"crm")]
    doc = orjson.loads(value)
    assert (doc["outcome"], doc["status"], doc["latency_ms"]) == ("delivered", 204, 2000)
    assert doc["at"] == doc["last_attempt_at"] == "2023-11-14T22:13:22.000Z"


async def test_a_gathered_parking_is_written_after_its_group_and_never_cancels_it() -> None:
    producer = Producer()
    log = OutcomeLog(producer, "log")
    parked = Parked("crm", EVENT, None, 0, None, 1_700_000_300.0,
                    {"kind": "circuit_open", "status": None, "message": "circuit open"})
    group: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    mine, theirs = log.parked_with(parked, CLOSED, group), log.parked_with(parked, CLOSED, group)
    await asyncio.sleep(0)
    assert producer.sent == []  # not before the group's record is acked
    mine.cancel()  # e.g. a revocation: this delivery's work is given up...
    await asyncio.sleep(0)
    assert not group.cancelled()  # ...the group, shared, goes on
    group.set_result("hookd.retry.5m")
    assert await theirs == "hookd.retry.5m"
    [(_, value, _, _)] = producer.sent
    doc = orjson.loads(value)
    assert (doc["outcome"], doc["retry_topic"], doc["last_attempt_at"], doc["attempts"]) == (
        "parked", "hookd.retry.5m", None, 0)
    assert doc["error"] == {"kind": "circuit_open", "status": None, "message": "circuit open"}
