"""How a delivery that is not delivered ends: parked in a retry topic (alone, or gathered
with the others of its hook when it was never sent), or dead-lettered; each counted, and
each waited for until the broker acknowledged it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import structlog

from hookd.delivery.attempts import Job, Line
from hookd.delivery.retries import ErrorKind, Outcome
from hookd.kafka.deadletter import DeadLetter, DeadLetterSink, Source
from hookd.kafka.gathering import Group, Told
from hookd.kafka.outcomelog import OutcomeLog
from hookd.kafka.parking import Parked, ParkingLot, TooLargeToPark, error_of
from hookd.kafka.writes import WriteWatch, until_acked
from hookd.telemetry.hookstats import HookStat, HookStats
from hookd.telemetry.redact import Redactor

log = structlog.get_logger("hookd.dispatch")


def _count_parked(stat: HookStat, group: Group, acked: bool) -> None:
    if acked:
        stat.parked += len(group.entries)


def _settle(future: asyncio.Future[None], acked: bool) -> None:
    if not future.done():
        if acked:
            future.set_result(None)
        else:
            future.cancel()


class Counters:
    """The daemon's totals. What happens to a record as a whole is counted here; how each
    delivery ended is counted once, in its hook's HookStat, and summed when read."""

    __slots__ = ("bad_dead_lettered", "decode_errors", "events", "stats", "unmatched")

    def __init__(self, stats: HookStats) -> None:
        self.stats = stats
        self.events = 0  # source records taken
        self.decode_errors = 0  # of them, not decodable (each dead-lettered as `decode`)
        self.unmatched = 0  # records decoded that matched no (enabled) hook
        self.bad_dead_lettered = 0  # records of no hook written to the dead-letter topic

    @property
    def delivered(self) -> int:
        return self.stats.total("delivered")

    @property
    def parked(self) -> int:
        """Deliveries parked in retry topics so far (a total, not a gauge)."""
        return self.stats.total("parked")

    @property
    def retrying(self) -> int:
        """Deliveries waiting in memory for their next attempt right now."""
        return self.stats.total("waiting")

    @property
    def dead_lettered(self) -> int:
        """Records written to the dead-letter topic: deliveries, and bad records."""
        return self.stats.total("dead_lettered") + self.bad_dead_lettered


@dataclass
class Endings:
    dead_letters: DeadLetterSink
    redactor: Callable[[], Redactor]
    counters: Counters  # its `stats`: per hook, where each ending is counted
    parking: ParkingLot | None = None  # None: every retry waits in memory
    writes: WriteWatch | None = None  # where writes that keep failing are told (readiness)
    outcomes: OutcomeLog | None = None  # the delivery log (kafka.outcomes_topic), if any

    def parked(self, job: Job, outcome: Outcome, delay: float) -> tuple[Parked, float]:
        lot = self.parking
        assert lot is not None
        delay = lot.clamped(delay)
        return Parked(job.hook_id, job.event, job.key, job.attempts, job.first_attempt_at,
                      time.time() + delay, error_of(outcome, self.redactor())), delay

    @property
    def stats(self) -> HookStats:
        return self.counters.stats

    def gather(self, job: Job, outcome: Outcome, delay: float, told: Told) -> bool:
        """Park a delivery that was not sent with the others of its hook (one record and
        one log line for them all): `told(acked)` once the group's record is acked (False:
        given up, the daemon stops), with the group's others, in one loop. False when it
        cannot join them (then it never will: its size does not change, so it is not
        serialized again to find out)."""
        lot = self.parking
        assert lot is not None
        if job.alone:
            return False
        group = lot.park_unsent(job, outcome, delay, self.redactor)
        if group is None:
            job.alone = True
            return False
        waiting = group.waiting
        if not waiting:  # a new group: its deliveries counted at its ack, all at once
            waiting.append(partial(_count_parked, self.stats.of(job.hook_id), group))
        if self.outcomes is None:
            waiting.append(told)
        else:  # and its own outcome record, after the group's
            parked, _ = self.parked(job, outcome, delay)
            self.outcomes.parked_with(parked, outcome, group.acked()).add_done_callback(
                lambda done: told(not done.cancelled()))
        return True

    async def park_unsent(self, job: Job, outcome: Outcome, delay: float) -> bool:
        """Park a delivery that was not sent with the others of its hook, and wait for the
        group's ack; False when it cannot join them (then `park` it alone)."""
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self.gather(job, outcome, delay, partial(_settle, acked)):
            return False
        await asyncio.shield(acked)  # shielded: cancelled, it is given up, not the group
        return True

    async def park(self, job: Job, outcome: Outcome, delay: float, bound: Line) -> None:
        """Park one delivery alone: its own record and log line (an unsent one is first
        offered to its hook's group, by the caller: `park_unsent`)."""
        lot = self.parking
        assert lot is not None
        parked, delay = self.parked(job, outcome, delay)
        try:
            topic = await until_acked(lambda: lot.park(parked, delay), "park",
                                      lot.topic_for(delay), self.writes)
        except TooLargeToPark as exc:
            return await self.fail(job, replace(outcome, message=f"{outcome.message} "
                                                 f"(not parked: {exc})"))
        self.stats.of(job.hook_id).parked += 1
        if self.outcomes is not None:
            await self.outcomes.parked(parked, outcome, topic)
        bound.info("delivery", outcome="parked", attempt=job.attempts, retry_in_s=round(delay, 1),
                   retry_topic=topic)

    async def fail(self, job: Job, outcome: Outcome) -> None:
        """A delivery's end: dead-lettered, counted for its hook once the broker acked."""
        stat = self.stats.of(job.hook_id)
        stat.error(outcome.message or str(outcome.status or outcome.kind))  # the final one
        meta = job.event.meta
        letter = DeadLetter(
            job.hook_id, job.event.id, job.event.name, job.event.payload, None,
            outcome.kind or ErrorKind.CONNECT, outcome.status,
            self.redactor()(outcome.message), job.attempts,
            job.first_attempt_at, time.time() if job.attempts else None,
            Source(meta.topic, meta.partition, meta.offset), job.key)
        await self.dead_letter(letter)
        stat.dead_lettered += 1
        if self.outcomes is not None:
            await self.outcomes.dead_lettered(job, letter)
        log.warning("delivery", outcome="dead_lettered", hook=job.hook_id,
                    _event=job.event.name, attempts=job.attempts, status=outcome.status,
                    error_kind=str(outcome.kind), error=outcome.message,
                    topic=meta.topic, partition=meta.partition, offset=meta.offset)

    async def dead_letter(self, letter: DeadLetter) -> None:
        await until_acked(lambda: self.dead_letters.publish(letter), "dead-letter",
                          self.dead_letters.topic, self.writes)

    async def bad_record(self, letter: DeadLetter) -> None:
        """A record that belongs to no hook (undecodable, or an unreadable retry record)."""
        await self.dead_letter(letter)
        self.counters.bad_dead_lettered += 1
