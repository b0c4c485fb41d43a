"""hookd.kafka.parking: the parked record's format, tiers, due times, and what ParkingLot writes
(through a producer that keeps the records in a list; the real broker is in
tests/integration/test_retries.py)."""

from __future__ import annotations

import asyncio
import base64
import time
import typing
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pytest

from hookd.delivery.attempts import Job
from hookd.delivery.retries import ErrorKind, Outcome, Verdict
from hookd.events.decode import Event, Meta
from hookd.events.trace import TraceContext
from hookd.kafka import parking as parking_module
from hookd.kafka.gathering import FORMAT_GROUP
from hookd.kafka.parking import (
    DUE_HEADER,
    Parked,
    ParkingLot,
    TooLargeToPark,
    due_of,
    entry_of,
    pick_tier,
    read_parked,
    tier_topic,
)
from hookd.pipeline.runtime import load_config, tiers_of
from hookd.telemetry.redact import Redactor
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


CLOSED = Outcome(Verdict.PARK, ErrorKind.CIRCUIT_OPEN, None, "circuit open for host h", 30.0)


def job(hook: str = "crm", event: Event = EVENT) -> Job:
    return Job(hook, event, b"c-1", 2, 1_700_000_001.0)


def unmasked() -> Redactor:
    return Redactor()


def test_an_entry_is_written_as_it_was_before_it_was_built_for_orjson() -> None:
    """entry_of encodes the key with binascii: the bytes must be those of the dict
    Parked.entry() built before (base64.b64encode)."""
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    traced = replace(EVENT, trace=TraceContext(parent, "a=b"))
    bare = replace(EVENT, meta=Meta("t", 0, 1))
    for event, key in [(EVENT, b"c-1\xff"), (traced, None), (bare, b"")]:
        before: dict[str, Any] = {
            "event": event.name, "event_id": event.id, "payload": event.payload,
            "meta": event.meta.as_dict(),
            "key": base64.b64encode(key).decode() if key is not None else None,
            "attempts": 3, "first_attempt_at": None}
        if event.trace is not None:
            before["trace"] = [event.trace.traceparent, event.trace.tracestate]
        assert orjson.dumps(entry_of(event, key, 3, None)) == orjson.dumps(before)


@pytest.mark.parametrize("cls", [Parked])
def test_parked_is_not_frozen_and_its_fields_are_final(cls: type) -> None:
    """Not frozen, as Event is not (its __init__ sets each slot directly); Final fields
    instead, for mypy."""
    assert not cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert hasattr(cls, "__slots__")
    hints = typing.get_type_hints(cls, vars(parking_module), include_extras=True)
    assert all(typing.get_origin(hint) is typing.Final for hint in hints.values())
    assert parked() == parked() and parked() != parked(due_at=1.0)


async def test_deliveries_parked_unsent_are_gathered_per_tier_and_hook() -> None:
    producer = Producer()
    lot = ParkingLot(producer, None, "hookd.retry", 4, linger=0.01)
    await lot.ensure_tiers([30.0, 300.0])
    before = time.time()
    groups = [lot.park_unsent(job(), CLOSED, 30.0, unmasked),
              lot.park_unsent(job("erp"), CLOSED, 30.0, unmasked),
              lot.park_unsent(job(), replace(CLOSED, message="another"), 30.0, unmasked),
              lot.park_unsent(job(), CLOSED, 600.0, unmasked)]
    assert all(g is not None for g in groups)
    assert groups[0] is groups[2]  # same hook and tier: one group
    assert len({id(g) for g in groups}) == 3
    told: list[tuple[int, bool]] = []
    for n, group in enumerate(groups):
        assert group is not None
        group.waiting.append(lambda acked, n=n: told.append((n, acked)))
    assert producer.sent == []  # not before the linger
    assert groups[0] is not None
    topic = await groups[0].acked()
    await asyncio.sleep(0.01)
    assert topic == "hookd.retry.30s"
    assert sorted(told) == [(0, True), (1, True), (2, True), (3, True)]
    assert [n for n, _ in told if n in (0, 2)] == [0, 2]  # a group's in order
    records = {(topic, key): (read_parked(value), dict(headers))
               for topic, value, key, headers in producer.sent}
    assert sorted(records) == [("hookd.retry.30s", b"crm"), ("hookd.retry.30s", b"erp"),
                               ("hookd.retry.5m", b"crm")]
    (first, second), headers = records[("hookd.retry.30s", b"crm")]
    assert headers["hookd-deliveries"] == b"2"
    assert float(headers[DUE_HEADER]) == first.due_at
    assert before + 30 <= first.due_at <= time.time() + 30
    assert first == second == Parked("crm", EVENT, b"c-1", 2, 1_700_000_001.0, first.due_at,
                                     {"kind": "circuit_open", "status": None,
                                      "message": "circuit open for host h"})
    # (a group's due time and error are its first delivery's)
    [tenth] = records[("hookd.retry.5m", b"crm")][0]
    assert tenth.due_at <= time.time() + 300  # the longest tier's, not the 600 s asked


async def test_a_group_tells_its_waiting_once_in_order_and_a_failing_one_stops_nobody(
        ) -> None:
    lot = ParkingLot(Producer(), None, "hookd.retry", 4, linger=0.001)
    await lot.ensure_tiers([30.0])
    group = lot.park_unsent(job(), CLOSED, 30.0, unmasked)
    assert group is not None
    told: list[str] = []

    def fails(acked: bool) -> None:
        raise RuntimeError("a bug")

    group.waiting.extend([lambda acked: told.append(f"a {acked}"), fails,
                          lambda acked: told.append(f"b {acked}")])
    await group.acked()
    await asyncio.sleep(0)
    assert told == ["a True", "b True"]
    group.tell(True)  # (told once: the list is let go)
    assert told == ["a True", "b True"]


class Holding(Producer):
    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None,
                            headers: Any = None) -> None:
        await asyncio.Event().wait()


@pytest.mark.parametrize("started", [True, False])
async def test_groups_given_up_at_shutdown_tell_their_waiting_so(started: bool) -> None:
    """Whether its write had begun (waiting for the broker) or not (its task cancelled
    before it ran its first line), a group given up is told so."""
    lot = ParkingLot(Holding(), None, "hookd.retry", 4, linger=10.0)
    await lot.ensure_tiers([30.0])
    group = lot.park_unsent(job(), CLOSED, 30.0, unmasked)
    assert group is not None
    told: list[bool] = []
    group.waiting.append(told.append)
    acked = group.acked()
    if started:
        lot.write_gathered()
        await asyncio.sleep(0.01)
    await lot.stop_gathering()
    await asyncio.sleep(0)
    assert told == [False] and acked.cancelled()
    assert not lot._writing


async def test_a_group_is_written_when_full_and_a_delivery_too_big_for_one_is_refused(
        ) -> None:
    producer = Producer()
    lot = ParkingLot(producer, None, "hookd.retry", 4, max_bytes=8_000, linger=10.0)
    await lot.ensure_tiers([30.0])
    one = len(orjson.dumps(parked().entry()))
    per_group = lot.group_bytes // (one + 1)
    groups = [lot.park_unsent(job(), CLOSED, 30.0, unmasked) for _ in range(per_group + 1)]
    assert all(g is not None for g in groups) and groups[0] is not groups[-1]
    acked = [g.acked() for g in {id(g): g for g in groups if g is not None}.values()]
    await asyncio.sleep(0.01)
    [(_, value, _, headers)] = producer.sent  # the first group, full: written at once
    assert orjson.loads(value)["v"] == FORMAT_GROUP
    assert len(read_parked(value)) == per_group == int(dict(headers)["hookd-deliveries"])
    assert len(value) <= lot.max_bytes * 9 // 10
    big = job(event=Event("Answered", "e", {"blob": "x" * 5_000}, EVENT.meta))
    assert lot.park_unsent(big, CLOSED, 30.0, unmasked) is None  # park() it alone (and
    lot.write_gathered()  # be refused there)
    await asyncio.gather(*acked)
    assert [len(read_parked(v)) for _, v, _, _ in producer.sent] == [per_group, 1]
