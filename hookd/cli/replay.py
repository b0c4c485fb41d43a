"""`hookd replay`: move dead letters back for delivery, exactly once per letter.

Letters are read with the consumer group `{group_id}.replay` (`{group_id}.replay.{hook}`
with `--hook`: a filtered replay must not move past the other hooks' letters) and parked,
due now, in the shortest retry tier: the running daemons deliver them with fresh attempts
and the same webhook-id (it derives from event id and hook id). The group's committed
offsets record the progress, so a second replay does not repeat the first. Letters that
cannot be replayed (unreadable, a hook no longer configured, an event too large to have
been kept in the letter) are counted as skipped and said why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, TextIO

import orjson
from aiokafka import TopicPartition

from hookd.events.decode import Event, make_meta
from hookd.kafka.clients import make_admin, make_consumer
from hookd.kafka.connect import start_producer
from hookd.kafka.parking import Parked, ParkingLot, TooLargeToPark
from hookd.pipeline.runtime import Runtime, tiers_of


@dataclass
class ReplayReport:
    replayed: int = 0
    skipped: int = 0  # unreadable letters, other hooks, hooks gone, events not kept


def letter_to_parked(letter: dict[str, Any], key: bytes | None) -> Parked:
    """KeyError, TypeError or ValueError when the letter lacks what a delivery needs."""
    src = letter["source"]
    if not isinstance(letter["payload"], dict):  # left out of a letter too large to keep
        raise ValueError(f"the event was not kept in the letter ({letter.get('note')})")
    meta = make_meta(str(src["topic"]), int(src["partition"]), int(src["offset"]), key,
                     None, None)
    event = Event(str(letter["event"]), str(letter["event_id"]), letter["payload"], meta)
    return Parked(str(letter["hook"]), event, key, attempts=0, first_attempt_at=None,
                  due_at=time.time(), error={"kind": "replay"})


async def partitions_of(admin: Any, topic: str) -> set[int]:
    """The partitions of `topic` (none when it does not exist), asked of the cluster. Not
    of a consumer: its metadata holds only the topics it subscribed to (on Apache Kafka,
    `consumer.partitions_for_topic` of an unassigned topic is None, and a replay would
    find no letter)."""
    described: list[dict[str, Any]] = await admin.describe_topics([topic])
    return {int(p["partition"]) for t in described if t.get("error_code") == 0
            for p in t.get("partitions") or []}


async def replay(runtime: Runtime, hook_id: str | None, limit: int | None, dry_run: bool,
                 out: TextIO) -> ReplayReport:
    kafka = runtime.config.kafka
    group = f"{kafka.group_id}.replay" + (f".{hook_id}" if hook_id is not None else "")
    consumer = make_consumer(kafka, group, from_start=True)
    admin = make_admin(kafka)
    report = ReplayReport()
    await consumer.start()
    producer = await start_producer(kafka)
    await admin.start()
    try:
        parts = await partitions_of(admin, kafka.dead_letter_topic)
        tps = [TopicPartition(kafka.dead_letter_topic, p) for p in sorted(parts)]
        if not tps:
            return report
        consumer.assign(tps)
        for tp in tps:
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
        end = await consumer.end_offsets(tps)
        lot = ParkingLot(producer, admin, kafka.retry_topic_prefix, kafka.retry_partitions,
                         kafka.retry_replication, kafka.max_request_size)
        await lot.ensure_tiers(tiers_of(runtime))
        # Read up to the end offsets seen at the start, and on until a poll comes back
        # empty (some brokers report end offsets late). Letters arriving later wait for
        # the next replay.
        idle, behind = 0, True
        while (idle < 2 or (behind and idle < 20)) and (limit is None
                                                        or report.replayed < limit):
            batches = await consumer.getmany(timeout_ms=500)
            idle = 0 if batches else idle + 1
            behind = any([await consumer.position(tp) < end[tp] for tp in tps])
            progress: dict[TopicPartition, int] = {}
            for tp, records in batches.items():
                for record in records:
                    if limit is not None and report.replayed >= limit:
                        break
                    progress[tp] = record.offset + 1
                    await _one(record, runtime, hook_id, dry_run, lot, report, out)
            if progress and not dry_run:
                await consumer.commit(progress)
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.close()
    return report


async def _one(record: Any, runtime: Runtime, hook_id: str | None, dry_run: bool,
               lot: ParkingLot, report: ReplayReport, out: TextIO) -> None:
    try:
        letter = orjson.loads(record.value)
        hook = letter.get("hook")
    except (orjson.JSONDecodeError, AttributeError):  # not JSON, or not an object
        report.skipped += 1
        return
    if not hook or (hook_id is not None and hook != hook_id) or runtime.hook(hook) is None:
        report.skipped += 1
        return
    try:
        parked = letter_to_parked(letter, record.key)
        if not dry_run:
            await lot.park(parked, 0.0)
    except (KeyError, TypeError, ValueError, AttributeError, TooLargeToPark) as exc:
        print(f"skipped: hook={hook} offset={record.offset}: {exc}", file=out)
        report.skipped += 1
        return
    print(f"{'would replay' if dry_run else 'replayed'}: hook={hook} "
          f"event={parked.event.name} event_id={parked.event.id} "
          f"error={letter.get('error', {}).get('kind')}", file=out)
    report.replayed += 1
