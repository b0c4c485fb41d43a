"""The delivery log (`kafka.outcomes_topic`) as the pipeline sees it: one call where a
delivery is final or parked, which returns once the broker acknowledged its record.

The pipeline holds an `OutcomeLog` or None (no outcomes topic): where a delivery ends it
pays one `is not None` when the log is off. Where it is on, the record is part of the
delivery's work: its source offset is committed only after the record's ack, as for a
parking or a dead letter, so the log has no gaps (at least once: a source record read
again after a crash or a rebalance writes its outcomes again, as its deliveries are made
again). A write that fails is tried until it is acked (`until_acked`): the offset waits,
the topic's stall is told to the WriteWatch (/readyz names it after
`health.stall_after`), and once as many records as the backpressure allows wait, the
source consumer pauses. The log is never silently shorter than what was delivered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple

from hookd.delivery.attempts import Job
from hookd.delivery.retries import Outcome, Verdict
from hookd.kafka.batching import Acked, BatchedProducer
from hookd.kafka.deadletter import DeadLetter
from hookd.kafka.outcomes import HOOK_DISABLED, ErrorDoc, OutcomeRecord, outcome_record, to_json
from hookd.kafka.parking import Parked
from hookd.kafka.writes import WriteWatch, until_acked
from hookd.loops import RunningLoop

Written = Coroutine[Any, Any, None]  # an outcome record's write, acked when it returns


class Entry(NamedTuple):
    """An outcome record as the producer writes it."""

    value: bytes
    key: bytes
    headers: list[tuple[str, bytes]]


class OutcomeLog:
    """Writes outcome records through the daemon's batching producer (acks=all), keyed by
    event id, with `hookd-outcome` and `hookd-hook` headers for consumers that filter
    without parsing."""

    def __init__(self, producer: Any, topic: str, writes: WriteWatch | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.producer, self.topic, self.writes, self.clock = producer, topic, writes, clock
        self._loop = RunningLoop()
        # the batching producer's `append` (hookd.kafka.batching); None: a plain producer
        self._append: Callable[..., bool] | None = (
            producer.append if isinstance(producer, BatchedProducer) else None)

    def delivered(self, job: Job, status: int | None) -> Written:
        """A 2xx answer (`job.attempts` counts the one that brought it)."""
        return self.write_entry(self.delivered_entry(job, status))

    def delivered_entry(self, job: Job, status: int | None, msg_id: str | None = None,
                        ) -> Entry:
        """`delivered`'s record, not written yet (`msg_id`: its webhook-id, when known)."""
        now = self.clock()
        return self.entry(outcome_record(
            "delivered", job.hook_id, job.event, attempts=job.attempts,
            first_attempt_at=job.first_attempt_at, last_attempt_at=now, status=status,
            error=None, at=now, msg_id=msg_id))

    def dead_lettered(self, job: Job, letter: DeadLetter) -> Written:
        """Written to the dead-letter topic (and acked): the letter's own figures."""
        return self.write(outcome_record(
            "dead_lettered", job.hook_id, job.event, attempts=letter.attempts,
            first_attempt_at=letter.first_attempt_at, last_attempt_at=letter.last_attempt_at,
            status=letter.status, error={"kind": str(letter.kind), "status": letter.status,
                                         "message": letter.message}, at=self.clock()))

    def parked(self, parked: Parked, outcome: Outcome, topic: str) -> Written:
        """Written to retry topic `topic` (and acked). Nothing was sent this time when the
        verdict is PARK (the circuit is open): then no last attempt."""
        now = self.clock()
        return self.write(outcome_record(
            "parked", parked.hook, parked.event, attempts=parked.attempts,
            first_attempt_at=parked.first_attempt_at,
            last_attempt_at=None if outcome.verdict is Verdict.PARK else now,
            status=outcome.status, error=_error(parked), at=now, retry_topic=topic,
            due_at=parked.due_at))

    def parked_with(self, parked: Parked, outcome: Outcome, group: asyncio.Future[str],
                    ) -> asyncio.Future[str]:
        """A delivery gathered with others of its hook (one retry record for them all):
        its own outcome record once the group's is acked. The group is shielded: it is
        shared, and a cancelled delivery must not cancel the others' parking."""
        async def then() -> str:
            topic = await asyncio.shield(group)
            await self.parked(parked, outcome, topic)
            return topic
        return self._loop().create_task(then())

    def skipped(self, job: Job, why: str) -> Written:
        """Not sent, not dead-lettered: its hook is disabled (410 Gone), or was removed or
        disabled while the delivery was parked."""
        return self.write(outcome_record(
            "skipped", job.hook_id, job.event, attempts=job.attempts,
            first_attempt_at=job.first_attempt_at, last_attempt_at=None, status=None,
            error={"kind": HOOK_DISABLED, "status": None, "message": why}, at=self.clock()))

    def write(self, record: OutcomeRecord) -> Written:
        """The record's write, until acked: a coroutine to await (each method hands it on
        rather than awaiting it, one frame less at every resume on the delivery path)."""
        return self.write_entry(self.entry(record))

    @staticmethod
    def entry(record: OutcomeRecord) -> Entry:
        return Entry(to_json(record), record["event_id"].encode(),
                     [("hookd-outcome", record["outcome"].encode()),
                      ("hookd-hook", record["hook"].encode())])

    def write_entry(self, entry: Entry, failed: BaseException | None = None) -> Written:
        """`entry`'s write, until acked (`failed`: its first try already failed so)."""
        return until_acked(lambda: self.producer.send_and_wait(
            self.topic, entry.value, key=entry.key, headers=entry.headers), "outcome",
            self.topic, self.writes, failed)

    def append(self, entry: Entry, acked: Acked) -> bool:
        """`entry` into the producer's open batch, without a task: `acked(None)` once the
        broker has acked it, `acked(exc)` if that failed (then `write_entry(entry, exc)`
        tries it until acked). False, nothing done: it must be written with `write_entry`
        (the producer does not batch, or cannot take it now)."""
        return self._append is not None and self._append(
            self.topic, entry.value, entry.key, entry.headers, acked)


def _error(parked: Parked) -> ErrorDoc:
    """A parked delivery's error as Endings recorded it (masked there)."""
    error = parked.error
    status = error.get("status")
    return {"kind": str(error.get("kind")), "status": status if isinstance(status, int)
            else None, "message": str(error.get("message") or "")}
