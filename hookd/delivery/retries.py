"""The retry decision (a pure function, tested with a table) and the retry schedule."""

from __future__ import annotations

import asyncio
import enum
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

from tenacity import AsyncRetrying, RetryCallState, retry_if_result


class Verdict(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAIL = "fail"
    GONE = "gone"  # 410: fail, and disable the hook until the next reload
    PARK = "park"  # not attempted (circuit open): park it, it costs no attempt


class ErrorKind(enum.StrEnum):
    """`error.kind` of a dead-letter record."""

    HTTP_STATUS = "http_status"
    TIMEOUT = "timeout"
    CONNECT = "connect"
    RENDER = "render"
    BLOCKED = "blocked"
    DECODE = "decode"
    INTERNAL = "internal"  # a bug in hookd: dead-lettered rather than wedging a partition
    # parked unsent while the endpoint's (host) or the hook's circuit is open; a dead letter
    # carries it only when such a delivery could not be parked (too large for the topic)
    CIRCUIT_OPEN = "circuit_open"


# Not frozen, as hookd.events.decode's records are not: a frozen dataclass's __init__ goes
# through object.__setattr__ per field (~3.5 k instructions of a parked delivery's ~75 k
# went there). Unchanged all the same: the fields are Final, so mypy refuses assignments
# (dataclasses.replace makes a new one); unsafe_hash keeps the hash a frozen one had.
@dataclass(slots=True, unsafe_hash=True)
class Outcome:
    """What one attempt came to."""

    verdict: Final[Verdict]
    kind: Final[ErrorKind | None] = None
    status: Final[int | None] = None
    message: Final[str] = ""
    retry_after: Final[float | None] = None  # seconds, from the response's Retry-After

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.DELIVERED


RETRYABLE_STATUS = frozenset({408, 425, 429})
# the outcome of each 2xx, made once (frozen): looked up by status on the common way
DELIVERED = {status: Outcome(Verdict.DELIVERED, status=status) for status in range(200, 300)}


def classify_status(status: int, retry_after: float | None = None, message: str = "") -> Outcome:
    """SPEC §3: 2xx delivered; 408/425/429/5xx retried; 410 gone; 3xx and other 4xx fail."""
    if 200 <= status < 300:
        return DELIVERED[status]
    if status in RETRYABLE_STATUS or 500 <= status < 600:
        return Outcome(Verdict.RETRY, ErrorKind.HTTP_STATUS, status, message, retry_after)
    if status == 410:
        return Outcome(Verdict.GONE, ErrorKind.HTTP_STATUS, status, message)
    return Outcome(Verdict.FAIL, ErrorKind.HTTP_STATUS, status, message)


def failure(kind: ErrorKind, message: str) -> Outcome:
    """An attempt that got no HTTP status: timeouts and connection errors are retried."""
    retried = kind in (ErrorKind.TIMEOUT, ErrorKind.CONNECT)
    return Outcome(Verdict.RETRY if retried else Verdict.FAIL, kind, None, message)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is True, float("²") raises
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def next_delay(schedule: Sequence[float], attempt: int, retry_after: float | None = None,
               jitter: float = 0.2, rng: random.Random | None = None) -> float | None:
    """Delay before attempt `attempt + 1` (attempts count from 1), or None when exhausted.

    Jitter is ±`jitter` of the scheduled delay; a Retry-After longer than that wins.
    """
    if attempt < 1 or attempt > len(schedule):
        return None
    base = schedule[attempt - 1]
    delay = base * (1 + (rng or random).uniform(-jitter, jitter)) if jitter else base
    if retry_after is not None:
        delay = max(delay, retry_after)
    return max(0.0, delay)


AttemptFn = Callable[[int], Awaitable[Outcome]]
SleepFn = Callable[[float], Awaitable[None]]


class _Plan:
    """tenacity's wait and stop: the hook's schedule with jitter, stretched by Retry-After,
    continued in memory only while the next delay is within `inline_max`.

    Both ask `delay`, which draws the delay once per attempt for whichever of them tenacity
    calls first: 9.x calls wait, then stop; 8.2 calls stop, then wait (and not wait at all
    when stop says stop). Neither depends on the other having run."""

    def __init__(self, schedule: Sequence[float], first: int, jitter: float,
                 inline_max: float) -> None:
        self.schedule, self.first, self.jitter = schedule, first, jitter
        self.inline_max = inline_max
        self.upcoming: float | None = None  # the delay after attempt `drawn_for`
        self.drawn_for = 0  # tenacity's attempt_number (from 1) `upcoming` was drawn for

    def delay(self, retry_state: RetryCallState) -> float | None:
        if self.drawn_for != retry_state.attempt_number:
            last = retry_state.outcome.result() if retry_state.outcome else None
            retry_after = last.retry_after if isinstance(last, Outcome) else None
            attempt = self.first + retry_state.attempt_number - 1
            self.upcoming = next_delay(self.schedule, attempt, retry_after, self.jitter)
            self.drawn_for = retry_state.attempt_number
        return self.upcoming

    def wait(self, retry_state: RetryCallState) -> float:
        delay = self.delay(retry_state)
        return delay if delay is not None else 0.0

    def stop(self, retry_state: RetryCallState) -> bool:
        delay = self.delay(retry_state)
        return delay is None or delay > self.inline_max


async def run_with_retries(attempt: AttemptFn, schedule: Sequence[float], jitter: float = 0.2,
                           sleep: SleepFn = asyncio.sleep, *, first: int = 1,
                           inline_max: float = math.inf, made: Outcome | None = None
                           ) -> tuple[Outcome, int, float | None]:
    """Call `attempt(n)` from n = `first` until the outcome is final, the schedule is spent,
    or the next delay is longer than `inline_max` (the caller then parks the delivery
    durably). Returns (last outcome, number of the last attempt made, the delay before the
    next attempt when one is due: what the caller parks for; None when the outcome is final
    or the schedule is spent).

    `made`: the outcome of attempt `first` when the caller made it already (the hot path
    makes the first attempt itself and comes here only for a RETRY: a coroutine less).

    The decision is `Outcome.verdict` (the pure functions above); tenacity supplies only
    the schedule and the limit. `attempt` must not raise.
    """
    if made is None:
        made = await attempt(first)  # the common case, delivered at once, skips tenacity
    if made.verdict is not Verdict.RETRY:
        return made, first, None
    number, already = first - 1, [made]

    async def once() -> Outcome:
        nonlocal number
        number += 1
        return already.pop() if already else await attempt(number)

    plan = _Plan(schedule, first, jitter, inline_max)
    retrying = AsyncRetrying(
        stop=plan.stop,
        wait=plan.wait,
        retry=retry_if_result(lambda o: o.verdict is Verdict.RETRY),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        sleep=sleep,
    )
    outcome: Outcome = await retrying(once)
    return outcome, number, plan.upcoming if outcome.verdict is Verdict.RETRY else None


class Ending(enum.Enum):
    """What becomes of a delivery once its attempts (and retries in memory) are over."""

    DELIVERED = "delivered"
    PARK_UNSENT = "park_unsent"  # a circuit open: parked (gathered with its hook's), no attempt
    WAIT_UNSENT = "wait_unsent"  # a circuit open and no retry topics: wait, then start over
    PARK = "park"  # retryable, the next delay too long for memory: parked for that delay
    DEAD_LETTER = "dead_letter"
    DISABLE = "disable"  # 410: dead-lettered, and the hook disabled until the next reload


def ending(outcome: Outcome, delay: float | None, parking: bool) -> Ending:
    """The decision after the last attempt: `outcome` is its outcome, `delay` the delay
    drawn before the next attempt (None: the schedule is spent, or the outcome final),
    `parking` whether retry topics are configured."""
    verdict = outcome.verdict
    if verdict is Verdict.DELIVERED:
        return Ending.DELIVERED
    if verdict is Verdict.GONE:
        return Ending.DISABLE
    if verdict is Verdict.PARK:
        return Ending.PARK_UNSENT if parking else Ending.WAIT_UNSENT
    if verdict is Verdict.RETRY and delay is not None and parking:
        return Ending.PARK
    return Ending.DEAD_LETTER
