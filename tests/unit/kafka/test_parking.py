"""hookd.kafka.parking: the parked record's format, tiers, due times, and what ParkingLot writes
(through a producer that keeps the records in a list; the real broker is in
tests/integration/test_retries.py)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pytest

from hookd.events.decode import Event, Meta
from hookd.events.trace import TraceContext
from hookd.kafka.parking import (
    DUE_HEADER,
    FORMAT_GROUP,
    Parked,
    ParkingLot,
    TooLargeToPark,
    due_of,
    pick_tier,
    read_parked,
    tier_topic,
)
from hookd.pipeline.runtime import load_config, tiers_of
from tests.unit.conftest import WriteConfig

EVENT = Event("Answered", "ev-1", {"event": "Answered", "call": "c-1"},
              Meta("cc.events", 2, 41, "c-1", 1_700_000_000_000, {"trace": "t-1"}))


def parked(due_at: float = 1_800_000_000.5) -> Parked:
    return Parked("crm", EVENT, b"c-1", 2, 1_700_000_001.0, due_at,
                  {"kind": "timeout", "status": None, "message": "no answer"})


def test_a_parked_delivery_reads_back_as_written() -> None:
    original = parked()
    [again] = read_parked(original.to_json())
    assert again == original
    assert orjson.loads(original.to_json())["meta"] == EVENT.meta.as_dict()


def test_a_parked_delivery_keeps_its_trace_context() -> None:
    """A CloudEvent's trace context is not among meta's headers: the record carries it."""
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    traced = replace(parked(), event=replace(EVENT, trace=TraceContext(parent, "a=b")))
    [again] = read_parked(traced.to_json())
    assert again.event.trace == TraceContext(parent, "a=b")
    assert "trace" not in orjson.loads(parked().to_json())  # none: nothing written
    doc = orjson.loads(traced.to_json())
    doc["trace"] = ["00-garbage", "a=b"]  # read back checked: never sent on
    [bad] = read_parked(orjson.dumps(doc))
    assert bad.event.trace is None


@pytest.mark.parametrize("value", [b"{}", b'{"v": 99}', b"[1]"])
def test_a_record_hookd_did_not_write_is_refused(value: bytes) -> None:
    with pytest.raises(ValueError, match="not a hookd parked delivery"):
        read_parked(value)


@pytest.mark.parametrize(("delay", "tier"), [
    (0.0, 30.0), (29.0, 30.0), (30.0, 30.0), (299.0, 30.0), (300.0, 300.0), (1e9, 3600.0)])
def test_pick_tier_takes_the_longest_not_longer_than_the_delay(delay: float,
                                                               tier: float) -> None:
    assert pick_tier([30.0, 300.0, 3600.0], delay) == tier


def test_tiers_are_the_long_delays_and_always_the_circuit_cooldown(
        write_config: WriteConfig) -> None:
    runtime = load_config(write_config("""
        delivery:
          retry: {schedule: [1s, 5s, 2m], inline_max: 10s}
          circuit_breaker: {cooldown: 5s}
        hooks:
          - id: a
            event: Answered
            request: {url: "http://127.0.0.1/a"}
            retry: {schedule: [1s, 1h]}
        """).main, environ={})
    # 1 s and 5 s wait in memory; the 5 s cooldown still gets a tier: an open circuit
    # parks whatever the schedules say
    assert tiers_of(runtime) == [5.0, 120.0, 3600.0]


@dataclass
class Record:
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def test_due_of_reads_the_header_and_falls_back_to_the_record() -> None:
    body = parked(due_at=1_800_000_123.25).to_json()
    assert due_of(Record(b"not even json", [(DUE_HEADER, b"1800000000.5")])) == 1_800_000_000.5
    assert due_of(Record(body)) == 1_800_000_123.25  # parked before the header existed
    assert due_of(Record(b"garbage")) is None
    assert due_of(Record(b"{}", [(DUE_HEADER, b"soon")])) is None


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None,
                            headers: Any = None) -> None:
        self.sent.append((topic, value, key, list(headers or ())))


async def test_topic_for_names_the_tier_pick_tier_picks() -> None:
    lot = ParkingLot(Producer(), None, "hookd.retry", 4)
    await lot.ensure_tiers([300.0, 30.0, 3600.0, 0.5])
    for delay in (0.0, 0.5, 29.0, 30.0, 299.999, 300.0, 3599.0, 3600.0, 1e9):
        assert lot.topic_for(delay) == tier_topic(
            "hookd.retry", pick_tier([0.5, 30.0, 300.0, 3600.0], delay)), delay
    await lot.ensure_tiers([60.0])  # a reload with other schedules: other names
    assert lot.topic_for(1.0) == lot.topic_for(1e9) == "hookd.retry.1m"


async def test_park_writes_to_its_tier_with_hook_and_due_headers() -> None:
    producer = Producer()
    lot = ParkingLot(producer, None, "hookd.retry", 4, max_bytes=10_000)
    with pytest.raises(RuntimeError, match="ensure_tiers"):
        await lot.park(parked(), 60.0)
    await lot.ensure_tiers([30.0, 300.0])
    due = time.time() + 60.0
    assert await lot.park(parked(due_at=due), 60.0) == tier_topic("hookd.retry", 30.0)
    [(topic, value, key, headers)] = producer.sent
    assert (topic, key) == ("hookd.retry.30s", b"c-1")
    assert headers == [("hookd-hook", b"crm"), (DUE_HEADER, repr(due).encode())]
    assert due_of(Record(value, headers)) == due
    big = Parked("crm", Event("Answered", "e", {"blob": "x" * 20_000}, EVENT.meta), None, 0,
                 None, due)
    with pytest.raises(TooLargeToPark):
        await lot.park(big, 60.0)
    assert len(producer.sent) == 1


def test_a_group_record_without_its_fields_is_refused() -> None:
    with pytest.raises(KeyError):
        read_parked(b'{"v": 2, "hook": "h"}')


async def test_deliveries_parked_unsent_are_gathered_per_tier_and_hook() -> None:
    producer = Producer()
    lot = ParkingLot(producer, None, "hookd.retry", 4, linger=0.01)
    await lot.ensure_tiers([30.0, 300.0])
    due = time.time() + 30
    futures = [lot.park_unsent(parked(due_at=due), 30.0),
               lot.park_unsent(replace(parked(due_at=due + 1), hook="erp"), 30.0),
               lot.park_unsent(parked(due_at=due + 2), 30.0),
               lot.park_unsent(parked(due_at=due + 3), 600.0)]
    assert all(f is not None for f in futures)
    assert futures[0] is futures[2]  # same hook and tier: one group
    assert len({id(f) for f in futures}) == 3
    assert producer.sent == []  # not before the linger
    topics = await asyncio.gather(*(f for f in futures if f is not None))
    assert topics == ["hookd.retry.30s", "hookd.retry.30s", "hookd.retry.30s",
                      "hookd.retry.5m"]
    groups = {(topic, key): read_parked(value) for topic, value, key, _ in producer.sent}
    assert sorted(groups) == [("hookd.retry.30s", b"crm"), ("hookd.retry.30s", b"erp"),
                              ("hookd.retry.5m", b"crm")]
    first, second = groups[("hookd.retry.30s", b"crm")]
    assert first == parked(due_at=due)
    assert second == parked(due_at=due)  # a group's due time is its first delivery's


async def test_a_group_is_written_when_full_and_a_delivery_too_big_for_one_is_refused(
        ) -> None:
    producer = Producer()
    lot = ParkingLot(producer, None, "hookd.retry", 4, max_bytes=8_000, linger=10.0)
    await lot.ensure_tiers([30.0])
    one = len(orjson.dumps(parked().entry()))
    per_group = lot.group_bytes // (one + 1)
    futures = [lot.park_unsent(parked(), 30.0) for _ in range(per_group + 1)]
    await asyncio.sleep(0.01)
    [(_, value, _, headers)] = producer.sent  # the first group, full: written at once
    assert orjson.loads(value)["v"] == FORMAT_GROUP
    assert len(read_parked(value)) == per_group == int(dict(headers)["hookd-deliveries"])
    assert len(value) <= lot.max_bytes * 9 // 10
    big = Parked("crm", Event("Answered", "e", {"blob": "x" * 5_000}, EVENT.meta), None, 0,
                 None, time.time())
    assert lot.park_unsent(big, 30.0) is None  # park() it alone (and be refused there)
    lot.write_gathered()
    await asyncio.gather(*(f for f in futures if f is not None))
    assert [len(read_parked(v)) for _, v, _, _ in producer.sent] == [per_group, 1]
