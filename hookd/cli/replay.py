"""`hookd replay`: move the selected dead letters back for delivery, each once.

The dead-letter topic is read whole, from its beginning, without a consumer group, and
each letter the selection (`hookd.cli.selection`) takes is parked, due now, in the
shortest retry tier: the running daemons deliver it with fresh attempts and the same
webhook-id (it derives from event id and hook id). Nothing is committed past the letters
left unselected: a later, different selection finds them.

What was moved is kept in the replay ledger (`hookd.kafka.replayed`): each parked
delivery and its marker are written in one Kafka transaction, a few hundred letters per
transaction, and the ledger is read (committed transactions only) before anything moves.
A replay killed at any moment has moved exactly the letters of its committed
transactions, and the next one skips them; the daemons' retry consumer reads committed
records only, so the moves of an unfinished transaction are never delivered. Every replay
uses the transactional id `<group_id>.replay`: starting one aborts the unfinished
transaction of a replay killed before it, and stops one still running (fenced), so two
replays at once cannot move a letter twice either.

Letters that cannot be replayed (unreadable, `decode` letters, a hook no longer configured,
an event too large to have been kept in the letter) are counted as skipped and said why.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TextIO

import orjson
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced

from hookd.cli.selection import Facts, Selection, facts_of
from hookd.cli.tally import Tally
from hookd.config import KafkaConfig
from hookd.events.decode import Event, make_meta
from hookd.kafka.clients import make_admin, make_reader, make_transactional_producer
from hookd.kafka.connect import refused, start_producer, stop_client
from hookd.kafka.parking import Parked, ParkedRecord, ParkingLot, TooLargeToPark
from hookd.kafka.replayed import (
    REPLAY_OF_HEADER,
    Ledger,
    Moved,
    earlier_replays,
    ensure_ledger,
    ledger_topic,
    read_marker,
)
from hookd.pipeline.runtime import Runtime, tiers_of

TRANSACTION_LETTERS = 200  # letters moved per transaction at most
TRANSACTION_TIMEOUT = 30.0  # seconds: a killed replay's open transaction is aborted then


class ReplayStopped(Exception):
    """The replay could not go on (fenced by another, a write refused); what it had
    committed stays moved."""


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


@dataclass(frozen=True, slots=True)
class _Move:
    moved: Moved
    record: ParkedRecord
    facts: Facts
    line: str


class Replayer:
    """Takes the dead-letter records one by one (`take`), and moves the selected ones in
    transactions (`flush`); dry, it only counts them."""

    def __init__(self, runtime: Runtime, selection: Selection, ledger: Ledger, lot: ParkingLot,
                 limit: int | None, dry_run: bool, out: TextIO, atomic: bool = True) -> None:
        self.runtime, self.selection, self.ledger, self.lot = runtime, selection, ledger, lot
        self.limit, self.dry_run, self.out = limit, dry_run, out
        self.atomic = atomic  # False: a broker without transactions (see _writer)
        self.tally = Tally()
        self.pending: list[_Move] = []

    @property
    def full(self) -> bool:
        return self.limit is not None and self.tally.moved + len(self.pending) >= self.limit

    def take(self, record: Any) -> None:
        self.tally.read += 1
        try:
            letter = orjson.loads(record.value)
            facts = facts_of(letter, record.timestamp)
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            facts, letter = Facts(None, None, None, None, None), None
        if self.full or not self.selection.matches(facts):
            return
        where = f"letter={record.partition}/{record.offset}"
        if letter is None or facts.hook is None or facts.event_id is None:
            return self._skip(f"{where}: not a delivery hookd can replay (kind={facts.kind})")
        moved = Moved(record.partition, record.offset, facts.hook, facts.event_id)
        if self.ledger.holds(moved):
            self.tally.before += 1
            return None
        if self.runtime.hook(facts.hook) is None:
            return self._skip(f"hook={facts.hook} {where}: no such hook in the config")
        try:
            parked = self.lot.record(letter_to_parked(letter, record.key), 0.0)
        except (KeyError, TypeError, ValueError, AttributeError, TooLargeToPark) as exc:
            return self._skip(f"hook={facts.hook} {where}: {exc}")
        line = (f"hook={facts.hook} event={letter.get('event')} event_id={facts.event_id} "
                f"error={facts.kind} status={facts.status or '-'} {where}")
        if self.dry_run:
            self.tally.add(facts)
        else:
            self.pending.append(_Move(moved, parked, facts, line))
        return None

    def _skip(self, why: str) -> None:
        print(f"skipped: {why}", file=self.out)
        self.tally.skipped += 1

    async def flush(self, producer: Any, ledger_name: str, dead_letters: str) -> None:
        """Park the pending letters and write their markers, in one transaction (not
        atomic: the parked deliveries acked first, then the markers)."""
        if not self.pending:
            return
        now = time.time()
        parked: list[_Out] = [(m.record.topic, m.record.value, m.record.key,
                   [*m.record.headers, (REPLAY_OF_HEADER, m.moved.replay_of(dead_letters))])
                  for m in self.pending]
        markers: list[_Out] = []
        for m in self.pending:
            key, value = m.moved.marker(m.record.topic, now)
            markers.append((ledger_name, value, key, None))
        try:
            if self.atomic:
                await producer.begin_transaction()
                await _send(producer, parked + markers)
                await producer.commit_transaction()
            else:
                await asyncio.gather(*await _send(producer, parked))
                await asyncio.gather(*await _send(producer, markers))
        except ProducerFenced:
            raise ReplayStopped("another hookd replay started (same kafka.group_id) and "
                                "took over; this one stopped") from None
        except KafkaError as exc:
            if self.atomic:
                await _abort(producer)
            raise ReplayStopped(f"writing to Kafka failed: {type(exc).__name__}: {exc}") \
                from None
        for move in self.pending:
            self.ledger.add(move.moved)
            self.tally.add(move.facts)
            print(f"replayed: {move.line}", file=self.out)
        self.out.flush()
        self.pending.clear()


_Out = tuple[str, bytes, bytes | None, Any]  # topic, value, key, headers


async def _send(producer: Any, records: list[_Out]) -> list[asyncio.Future[Any]]:
    return [await producer.send(topic, value, key=key, headers=headers)
            for topic, value, key, headers in records]


async def _writer(kafka: KafkaConfig, err: TextIO) -> tuple[Any, bool]:
    """The producer of the moves, and whether it writes them atomically. Transactional
    unless `kafka.idempotence: false` says the broker has no InitProducerId, or, with
    `auto`, the broker refuses it (tansu; a principal without the transactional id's ACL):
    then a plain producer writes each letter's parked delivery before its marker, and a
    replay killed between the two moves that letter again when run again (the same
    webhook-id: receivers that drop duplicates see it once)."""
    if kafka.idempotence is not False:
        producer = make_transactional_producer(kafka, f"{kafka.group_id}.replay",
                                               TRANSACTION_TIMEOUT)
        try:
            await producer.start()
            return producer, True
        except KafkaError as exc:
            await stop_client(producer)
            if kafka.idempotence is True or not refused(exc):
                raise
            print(f"warning: the broker refused a transactional producer ({exc}): the "
                  "letters are moved without a transaction, so a replay interrupted now may "
                  "move a few letters again when run again", file=err)
    return await start_producer(kafka), False


async def _abort(producer: Any) -> None:
    # when this fails too, the broker aborts it after TRANSACTION_TIMEOUT, or the next
    # replay does as it starts
    with contextlib.suppress(KafkaError):
        await producer.abort_transaction()


async def partitions_of(admin: Any, topic: str) -> set[int]:
    """The partitions of `topic` (none when it does not exist), asked of the cluster. Not
    of a consumer: its metadata holds only the topics it subscribed to (on Apache Kafka,
    `consumer.partitions_for_topic` of an unassigned topic is None, and a replay would
    find no letter). Listed first: aiokafka describes a topic with a request that lets a
    broker with auto.create.topics.enable create it, and a ledger made so would keep the
    broker's default retention."""
    if topic not in set(await admin.list_topics()):
        return set()
    described: list[dict[str, Any]] = await admin.describe_topics([topic])
    return {int(p["partition"]) for t in described if t.get("error_code") == 0
            for p in t.get("partitions") or []}


async def read_whole(reader: Any, admin: Any, topic: str) -> AsyncIterator[list[Any]]:
    """Batches of `topic`'s records, from its beginning to the end offsets seen at the
    start, and on until a poll comes back empty (some brokers report end offsets late);
    records written later wait for the next replay."""
    tps = [TopicPartition(topic, p) for p in sorted(await partitions_of(admin, topic))]
    if not tps:
        return
    reader.assign(tps)
    await reader.seek_to_beginning(*tps)
    end = await reader.end_offsets(tps)
    idle, behind = 0, True
    while idle < 2 or (behind and idle < 20):
        batches = await reader.getmany(timeout_ms=500)
        idle = 0 if batches else idle + 1
        behind = any([await reader.position(tp) < end[tp] for tp in tps])
        for records in batches.values():
            yield records


async def replay(runtime: Runtime, selection: Selection, limit: int | None, dry_run: bool,
                 out: TextIO, err: TextIO) -> Tally:
    """Raises ReplayStopped (and KafkaError, RuntimeError) when it cannot go on."""
    kafka = runtime.config.kafka
    admin, reader = make_admin(kafka), make_reader(kafka)
    producer: Any = None
    await admin.start()
    try:
        await reader.start()
        ledger_name = ledger_topic(kafka.dead_letter_topic)
        if not await partitions_of(admin, kafka.dead_letter_topic):
            return Tally()
        atomic = True
        if not dry_run:
            ledger_name, problem = await ensure_ledger(admin, kafka)
            if problem:
                print(f"warning: {problem}", file=err)
            # started before the ledger is read: this fences an earlier replay and aborts
            # what it left unfinished, so the ledger read below is final
            producer, atomic = await _writer(kafka, err)
        ledger = Ledger(await earlier_replays(admin, kafka.group_id, kafka.dead_letter_topic))
        async for records in read_whole(reader, admin, ledger_name):
            for record in records:
                moved = read_marker(record.value)
                if moved is not None:
                    ledger.add(moved)
        lot = ParkingLot(producer, None if dry_run else admin, kafka.retry_topic_prefix,
                         kafka.retry_partitions, kafka.retry_replication,
                         kafka.max_request_size)
        await lot.ensure_tiers(tiers_of(runtime))
        replayer = Replayer(runtime, selection, ledger, lot, limit, dry_run, out, atomic)
        async for records in read_whole(reader, admin, kafka.dead_letter_topic):
            for record in records:
                replayer.take(record)
                if len(replayer.pending) >= TRANSACTION_LETTERS:
                    await replayer.flush(producer, ledger_name, kafka.dead_letter_topic)
            await replayer.flush(producer, ledger_name, kafka.dead_letter_topic)
            if replayer.full:
                break
        await replayer.flush(producer, ledger_name, kafka.dead_letter_topic)
        return replayer.tally
    finally:
        for client in (reader, producer, admin):
            if client is not None:
                await stop_client(client)
