"""A consume loop: fetch, hand records on, pause for backpressure, commit the finished prefix.

The daemon runs two: the source topics, and the retry topics (whose records are held back
until due by pausing their partition).
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from hookd.config import ConsumerTuning
from hookd.kafka.fetching import PartitionReader, reason_of
from hookd.kafka.offsets import OffsetTracker
from hookd.kafka.stalls import StallWatch

log = structlog.get_logger("hookd.kafka.consumer")

# submit(record, done): take the record; call done() once all its work is final
Submit = Callable[[Any, Callable[[], None]], None]
# due(record) -> None to take it now, or the epoch time it becomes due
Due = Callable[[Any], float | None]
# abandon(partitions) -> how many deliveries it cancelled: nothing of those partitions'
# records is sent once it returns (Dispatcher.abandon)
Abandon = Callable[[set[TopicPartition]], Awaitable[int]]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ConsumerLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.loop.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions assigned", consumer=self.loop.name,
                 partitions=sorted(f"{t.topic}-{t.partition}" for t in assigned))


class RecordAges:
    """How old records were when they were taken: now minus their Kafka timestamp (the
    producer's clock for CreateTime, the broker's for LogAppendTime), over the last
    `size` records. Lag in records says how far behind; this says how late, before any
    delivery: the time in the broker, the fetch, and any wait for a busy event loop."""

    def __init__(self, size: int = 16384) -> None:
        self._ms = array("f", bytes(4 * size))
        self._next = 0  # the slot the next age goes to
        self.taken = 0  # records with a timestamp taken so far

    def add(self, now_ms: float, timestamp: int | None) -> None:
        if timestamp is None or timestamp < 0:  # no timestamp (a broker before 0.10)
            return
        self._ms[self._next] = max(0.0, now_ms - timestamp)  # (< 0: the clocks disagree)
        self._next = (self._next + 1) % len(self._ms)
        self.taken += 1

    def summary(self) -> dict[str, float | int]:
        """p50, p99 and max in ms over the window, and how many records it holds."""
        held = min(self.taken, len(self._ms))
        if not held:
            return {"records": 0}
        ages = sorted(self._ms[:held])  # (the ring is full once held == len)
        return {"records": held, "p50": round(ages[(held - 1) // 2], 1),  # nearest rank
                "p99": round(ages[-(-held * 99 // 100) - 1], 1),
                "max": round(ages[-1], 1)}


def _commit_ended(task: asyncio.Task[None]) -> None:
    """A background commit that raised what `commit` does not expect (a bug): say so."""
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.error("commit failed unexpectedly; the events will be redelivered",
                  error=f"{type(exc).__name__}: {exc}", exc_info=exc)


class ConsumerLoop:
    def __init__(self, name: str, consumer: Any, submit: Submit, tuning: ConsumerTuning,
                 pending: Callable[[], int], high_water: Callable[[], int],
                 due: Due | None = None, ages: RecordAges | None = None,
                 watch: StallWatch | None = None, abandon: Abandon | None = None) -> None:
        self.name, self.consumer, self.submit, self.tuning = name, consumer, submit, tuning
        self.abandon = abandon
        self.pending, self.high_water, self.due = pending, high_water, due
        self.tracker = OffsetTracker()
        self.fetched: dict[TopicPartition, int] = {}
        self._saturated = False
        self._waiting: dict[TopicPartition, float] = {}  # held back until this epoch time
        self._commit_lock = asyncio.Lock()  # one commit at a time, each of the newest offsets
        self._committing: asyncio.Task[None] | None = None
        # end offsets of paused partitions, asked for now and then: a paused partition is
        # not fetched, so its high watermark (and the lag shown) would stay as it was
        self._ends: dict[TopicPartition, int] = {}
        self._asking: asyncio.Task[None] | None = None
        self.ages = ages  # where the age of each record taken is noted, if anywhere
        self.tick = time.monotonic()
        # what keeps failing (fetches, a partition's records, commits) and since when
        self.watch = watch or StallWatch(name, 30.0)
        self.reader = PartitionReader(consumer, self.watch, self._hold)
        # an idle consumer asks the broker something now and then: a broker that is gone
        # does not make a fetch fail (aiokafka retries inside), it only brings nothing
        self._probe_every = max(0.5, min(self.watch.stall_after / 3, 10.0))
        self._last_heard = time.monotonic()  # records taken, or the broker answered a probe
        self._probing: asyncio.Task[None] | None = None

    def listener(self) -> ConsumerRebalanceListener:
        return _Listener(self)

    async def run(self, stop: asyncio.Event) -> None:
        last_commit = time.monotonic()
        try:
            while not stop.is_set():
                self.tick = time.monotonic()
                self._flow()
                self.watch.check()
                try:
                    batches = await self.reader.read(200, self.tuning.max_poll_records)
                except Exception as exc:  # a KafkaError, or a batch that cannot be decoded
                    self.watch.failed("fetch", "fetch", reason_of(exc))
                    await asyncio.sleep(0.5)
                    continue
                if batches:
                    self._last_heard = time.monotonic()
                    self.watch.ok("fetch")
                for tp, records in batches.items():
                    self._take(tp, records)
                self._maybe_probe()
                if time.monotonic() - last_commit >= self.tuning.commit_interval and (
                        self._committing is None or self._committing.done()):
                    # in the background: a commit's round trip (8 ms typical on tansu, 46
                    # ms at worst) would hold up the records fetched meanwhile on their way
                    self._committing = asyncio.create_task(self.commit(),
                                                           name=f"{self.name} commit")
                    self._committing.add_done_callback(_commit_ended)
                    last_commit = time.monotonic()
                    if self._asking is None or self._asking.done():
                        self._asking = asyncio.create_task(
                            self._ask_ends(), name=f"{self.name} end offsets")
        finally:
            for task in (self._asking, self._probing):  # only what is shown waits for them
                if task is not None:
                    task.cancel()

    def _hold(self, tp: TopicPartition, until: float) -> None:
        """Keep tp paused until that epoch time (`_flow` resumes it)."""
        self._waiting[tp] = until

    def _maybe_probe(self) -> None:
        now = time.monotonic()
        if now - self._last_heard < self._probe_every or (
                self._probing is not None and not self._probing.done()):
            return
        self._last_heard = now  # (the next probe comes probe_every after this one)
        self._probing = asyncio.create_task(self._probe(), name=f"{self.name} probe")

    async def _probe(self) -> None:
        """Is the broker answering? The end offsets of what is assigned (the leaders the
        fetches go to), or the topic list before any assignment."""
        timeout = min(5.0, self._probe_every * 2)
        try:
            async with asyncio.timeout(timeout):
                assigned = list(self.consumer.assignment())
                if assigned:
                    await self.consumer.end_offsets(assigned)
                else:
                    await self.consumer.topics()
        except TimeoutError:
            self.watch.failed("fetch", "fetch", f"the broker did not answer within {timeout:.1f}s")
        except Exception as exc:
            self.watch.failed("fetch", "fetch", f"the broker did not answer: {reason_of(exc)}")
        else:
            self.watch.ok("fetch")

    def _take(self, tp: TopicPartition, records: list[Any]) -> None:
        ages = self.ages
        now_ms = time.time() * 1000 if ages is not None else 0.0
        for record in records:
            when = self.due(record) if self.due is not None else None
            if when is not None:  # not due: hold the partition at this record
                self.consumer.seek(tp, record.offset)
                self.consumer.pause(tp)
                self._waiting[tp] = when
                self.fetched[tp] = record.offset  # the next to take (for the lag)
                return
            if ages is not None:
                ages.add(now_ms, record.timestamp)
            ticket = self.tracker.start(tp, record.offset)
            self.submit(record, partial(self.tracker.finish, ticket))
            self.fetched[tp] = record.offset + 1

    def _flow(self) -> None:
        """Pause everything while too much is in flight; resume partitions that came due."""
        assigned = set(self.consumer.assignment())
        now = time.time()
        for tp, when in list(self._waiting.items()):
            if tp not in assigned:
                del self._waiting[tp]
            elif when <= now and not self._saturated:
                del self._waiting[tp]
                self.consumer.resume(tp)
        high = self.high_water()
        if self.pending() >= high:
            self._saturated = True
        elif self._saturated and self.pending() <= high // 2:
            self._saturated = False
            self.consumer.resume(*(assigned - set(self._waiting)))
        if self._saturated:
            self.consumer.pause(*assigned)  # also partitions assigned since the pause

    async def _ask_ends(self) -> None:
        """Note the end offsets of the paused partitions (one ListOffsets request)."""
        paused = self.consumer.paused() & self.consumer.assignment()
        if not paused:
            return
        try:
            ends = await self.consumer.end_offsets(list(paused))
        except Exception as exc:  # only the lag shown depends on it: the last ends stay
            log.debug("end offsets not read", consumer=self.name, error=str(exc))
            return
        self._ends.update(ends)

    async def commit(self, only: set[TopicPartition] | None = None) -> None:
        """Commit the finished prefix of each assigned partition. Commits never overlap: one
        asked for while another is in flight waits for it, then commits what is newest then
        (so a commit at a revocation or at shutdown includes all that finished, and a
        slower, older commit never lands after it)."""
        async with self._commit_lock:
            await self._commit(only)

    async def _commit(self, only: set[TopicPartition] | None) -> None:
        assigned = self.consumer.assignment()
        offsets = {tp: o for tp, o in self.tracker.committable().items()
                   if tp in assigned and (only is None or tp in only)}
        if not offsets:
            return
        # aiokafka retries a commit for as long as the group's coordinator is unknown: one
        # that waits longer than a member may stay silent is given up (and said), so that
        # neither the next commits nor a stop wait behind it
        limit = self.tuning.session_timeout
        try:
            async with asyncio.timeout(limit):
                await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError, TimeoutError) as exc:
            reason = (f"the broker did not answer a commit within {limit:g}s"
                      if isinstance(exc, TimeoutError) else reason_of(exc))
            log.warning("commit failed; the events will be redelivered", consumer=self.name,
                        error=str(exc) or reason)
            self.watch.failed("commit", "commit", reason)
            return
        self.watch.ok("commit")
        self.tracker.mark_committed(offsets)

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        """Give in-flight work of revoked partitions a short grace (`revoke_grace`),
        abandon what is left of it, commit what finished, forget them.

        Abandoning keeps a key's order across owners: the next owner is assigned these
        partitions only after this returns (every member rejoins first), and it delivers
        again from the committed offset; a delivery of this process still running then
        (a slow receiver, retries waiting in memory, deliveries queued behind their key)
        could reach the receiver after the next owner's delivery of a later event of its
        key. Cancelled ones stay uncommitted: delivered again, with the same webhook-id."""
        deadline = time.monotonic() + self.tuning.revoke_grace
        while time.monotonic() < deadline and any(self.tracker.in_flight(tp) for tp in revoked):
            await asyncio.sleep(0.05)
        unfinished = {tp for tp in revoked if self.tracker.in_flight(tp)}
        if unfinished and self.abandon is not None:
            cancelled = await self.abandon(unfinished)
            log.info("revoked partitions' deliveries abandoned after the grace; their next "
                     "owner delivers them again", consumer=self.name, deliveries=cancelled,
                     records=sum(self.tracker.in_flight(tp) for tp in unfinished),
                     partitions=sorted(f"{t.topic}-{t.partition}" for t in unfinished))
        await self.commit(only=revoked)
        self.tracker.forget(revoked)
        self.reader.forget(revoked)
        for tp in revoked:
            self.fetched.pop(tp, None)
            self._waiting.pop(tp, None)
            self._ends.pop(tp, None)
        if revoked:
            log.info("partitions revoked", consumer=self.name,
                     partitions=sorted(f"{t.topic}-{t.partition}" for t in revoked))

    def assignment(self) -> list[TopicPartition]:
        return sorted(self.consumer.assignment(), key=lambda t: (t.topic, t.partition))

    def lag(self) -> dict[str, int]:
        """Records not taken yet, per partition this member has fetched: up to the high
        watermark of the last fetch, or to the end offset last asked for, if greater (a
        paused partition is not fetched: that of a retry topic holding a record not due,
        or any while hookd is saturated)."""
        out = {}
        for tp in self.assignment():
            high = max(self.consumer.highwater(tp) or 0, self._ends.get(tp, 0))
            if tp in self.fetched:
                out[f"{tp.topic}-{tp.partition}"] = max(0, high - self.fetched[tp])
        return out
