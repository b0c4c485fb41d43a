"""Writes to hookd's own topics (retry tiers, dead letters, the delivery log), tried until
the broker acks them, and the `produce` stall when they keep failing.

A write that fails holds its source record's offset (nothing is committed past it), so it
is tried again, for ever, with a growing pause. While at least one write to a topic is
failing, that topic has an open streak; older than `health.stall_after`, it is a stall:
/readyz answers 503 `stalled` naming the topic and the error. The streak ends by itself
once no write to the topic is failing any more (each was acked, or given up at shutdown
or on a revocation: its record comes again). An error no retry can cure (no WRITE
permission, a record larger than the topic takes) is named as such, with what the operator
must do; the writes are still tried again, so fixing the cause ends the stall.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CorruptRecordException,
    InvalidTopicError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnsupportedForMessageFormatError,
)

from hookd.errors import HookdError
from hookd.kafka.stalls import PRODUCE, StallWatch

log = structlog.get_logger("hookd.kafka.writes")
T = TypeVar("T")
FIRST_PAUSE, LONGEST_PAUSE = 0.5, 30.0

# errors the broker (or the client, before sending) gives again however often the write is
# tried, and what the operator must do about each
_TOO_LARGE = ("the record is larger than the topic takes: raise the topic's "
              "max.message.bytes to kafka.max_request_size or more (dead letters are cut to "
              "fit that), or lower kafka.max_request_size")
_OVER_OURS = ("the record is larger than kafka.max_request_size (a dead letter's key is "
              "never cut): raise it")
NOT_RETRIABLE: tuple[tuple[type[Exception], str], ...] = (
    (TopicAuthorizationFailedError, "hookd is not authorized to write to the topic: grant "
                                    "its principal WRITE and DESCRIBE on it"),
    (ClusterAuthorizationFailedError, "hookd is not authorized on the cluster: grant "
                                      "IDEMPOTENT_WRITE, or set kafka.idempotence: false"),
    (MessageSizeTooLargeError, _TOO_LARGE),
    (RecordTooLargeError, _TOO_LARGE),
    (RecordListTooLargeError, _TOO_LARGE),
    (InvalidTopicError, "the topic's name is not valid: fix kafka.dead_letter_topic, "
                        "kafka.outcomes_topic or kafka.retry_topic_prefix"),
    (PolicyViolationError, "a broker policy refuses the write: see the broker's log"),
    (CorruptRecordException, "the broker refuses the record as invalid (a record or schema "
                             "validation on the topic?): see the broker's log"),
    (UnsupportedForMessageFormatError, "the broker cannot store this record format: set "
                                       "kafka.compression to one it supports"),
)


class Unwritable(HookdError):
    """hookd found, before writing, that a record cannot be written (too big, not
    serializable): trying again would not help, so it is not tried again."""


def explain(exc: BaseException) -> str:
    """The error as readiness and the log give it: named `not retriable`, with what to
    do, when no retry can cure it."""
    name, said = type(exc).__name__, str(exc)
    text = said if name in said else f"{name}: {said}" if said else name  # aiokafka's name it
    for kind, todo in NOT_RETRIABLE:
        if isinstance(exc, kind):
            if todo is _TOO_LARGE and "max_request_size" in said:  # the client's own limit
                todo = _OVER_OURS
            return f"not retriable: {text}; {todo}"
    return text


class WriteWatch:
    """The writes failing right now, per topic, as streaks of a `producer` StallWatch: a
    topic's streak opens at its first failing write and ends when none is failing."""

    def __init__(self, watch: StallWatch) -> None:
        self.watch = watch
        self._failing: dict[str, int] = {}  # topic -> writes whose last try failed

    def failed(self, topic: str, exc: BaseException, *, again: bool) -> None:
        """A try of a write failed (`again`: the write had failed before)."""
        if not again:
            self._failing[topic] = self._failing.get(topic, 0) + 1
        self.watch.failed(topic, PRODUCE, explain(exc), topic=topic)

    def ended(self, topic: str) -> None:
        """A write that had failed is over: acked, or given up."""
        left = self._failing.get(topic, 0) - 1
        if left > 0:
            self._failing[topic] = left
            return
        self._failing.pop(topic, None)
        self.watch.ok(topic)

    def failing(self, topic: str) -> int:
        return self._failing.get(topic, 0)


async def until_acked(produce: Callable[[], Awaitable[T]], what: str, topic: str,
                      writes: WriteWatch | None = None,
                      failed: BaseException | None = None) -> T:
    """Try `produce` (a write to `topic`) until the broker acks it: the source offset must
    not move before that. Unwritable is raised at once (no retry makes it fit); every
    other failure is told to `writes` and tried again. `failed`: the write's first try,
    made elsewhere (a batch: hookd.kafka.batching), failed so."""
    pause, failing = FIRST_PAUSE, False
    try:
        while True:
            if failed is not None:  # any broker trouble: keep trying, the offset waits
                if writes is not None:
                    writes.failed(topic, failed, again=failing)
                failing = True
                log.error(f"{what} publish failed, retrying", topic=topic,
                          error=explain(failed), retry_in=pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE)
            try:
                return await produce()
            except Unwritable:
                raise
            except Exception as exc:
                failed = exc
    finally:
        if failing and writes is not None:
            writes.ended(topic)
