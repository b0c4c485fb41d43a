"""hookd.delivery.retries: the retry decision (a table), Retry-After, the schedule with
jitter, and the retry loop run against a fake attempt function and a recording sleep."""

from __future__ import annotations

import math
import random
import typing
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tenacity import AsyncRetrying, RetryCallState

from hookd.delivery import retries as retries_module
from hookd.delivery.retries import (
    Ending,
    ErrorKind,
    Outcome,
    Verdict,
    classify_status,
    ending,
    failure,
    next_delay,
    parse_retry_after,
    run_with_retries,
)
from hookd.delivery.retries import _Plan as Plan

D, R, F, G = Verdict.DELIVERED, Verdict.RETRY, Verdict.FAIL, Verdict.GONE
HTTP = ErrorKind.HTTP_STATUS

# status -> (verdict, kind). SPEC §3: 2xx delivered; 408, 425, 429, 5xx retried; 410 gone;
# 3xx (redirects are not followed) and every other 4xx fail at once.
STATUS_TABLE: list[tuple[int, Verdict, ErrorKind | None]] = [
    (200, D, None),
    (201, D, None),
    (204, D, None),
    (299, D, None),
    (301, F, HTTP),
    (302, F, HTTP),
    (304, F, HTTP),
    (400, F, HTTP),
    (401, F, HTTP),
    (403, F, HTTP),
    (404, F, HTTP),
    (408, R, HTTP),
    (409, F, HTTP),
    (410, G, HTTP),
    (422, F, HTTP),
    (425, R, HTTP),
    (429, R, HTTP),
    (500, R, HTTP),
    (502, R, HTTP),
    (503, R, HTTP),
    (504, R, HTTP),
    (599, R, HTTP),
]


@pytest.mark.parametrize(("status", "verdict", "kind"), STATUS_TABLE,
                         ids=[str(s) for s, _, _ in STATUS_TABLE])
def test_classify_status(status: int, verdict: Verdict, kind: ErrorKind | None) -> None:
    outcome = classify_status(status, retry_after=7.0, message=f"HTTP {status}: body")
    assert outcome.verdict is verdict
    assert outcome.kind is kind
    assert outcome.status == status
    assert outcome.ok is (verdict is D)
    # Retry-After only matters for something that will be retried
    assert outcome.retry_after == (7.0 if verdict is R else None)
    if verdict is not D:
        assert outcome.message == f"HTTP {status}: body"


def test_classify_status_without_retry_after() -> None:
    assert classify_status(503).retry_after is None


FAILURE_TABLE = [
    (ErrorKind.TIMEOUT, R),
    (ErrorKind.CONNECT, R),
    (ErrorKind.BLOCKED, F),
    (ErrorKind.RENDER, F),
    (ErrorKind.DECODE, F),
    (ErrorKind.HTTP_STATUS, F),
    (ErrorKind.INTERNAL, F),
    (ErrorKind.CIRCUIT_OPEN, F),  # (never made by failure(): a park, see outcomes)
]


@pytest.mark.parametrize(("kind", "verdict"), FAILURE_TABLE, ids=[str(k) for k, _ in FAILURE_TABLE])
def test_failure_per_kind(kind: ErrorKind, verdict: Verdict) -> None:
    outcome = failure(kind, "what happened")
    assert outcome == Outcome(verdict, kind, None, "what happened", None)
    assert not outcome.ok


def test_every_error_kind_is_in_the_failure_table() -> None:
    assert {k for k, _ in FAILURE_TABLE} == set(ErrorKind)


def test_error_kind_strings_are_the_spec_ones() -> None:
    # the SPEC's six, plus `internal` (a bug in hookd is dead-lettered, not a wedged
    # partition) and `circuit_open` (why a delivery was parked unsent)
    assert sorted(str(k) for k in ErrorKind) == sorted(
        ["http_status", "timeout", "connect", "render", "blocked", "decode", "internal",
         "circuit_open"])


# ------------------------------------------------------------------------- Retry-After

NOW = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


def http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


RETRY_AFTER_TABLE: list[tuple[str | None, float | None]] = [
    ("120", 120.0),
    ("0", 0.0),
    ("  5 ", 5.0),
    (http_date(NOW + timedelta(seconds=90)), 90.0),
    (http_date(NOW + timedelta(hours=2)), 7200.0),
    (http_date(NOW - timedelta(seconds=30)), 0.0),  # in the past: no extra wait
    ("Fri, 01 Mar 2024 12:01:00", 60.0),  # no zone given: taken as UTC
    ("soon", None),
    ("-5", None),
    ("1.5", None),  # delta-seconds is an integer
    ("²", None),  # a digit to str.isdigit, not to float(): not a delay
    ("Mon, 99 Foo 2024", None),
    ("", None),
    ("   ", None),
    (None, None),
]


@pytest.mark.parametrize(("header", "expected"), RETRY_AFTER_TABLE,
                         ids=[repr(h) for h, _ in RETRY_AFTER_TABLE])
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    got = parse_retry_after(header, now=NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_parse_retry_after_uses_the_clock_when_no_now_given() -> None:
    soon = http_date(datetime.now(UTC) + timedelta(seconds=100))
    got = parse_retry_after(soon)
    assert got is not None and 95 <= got <= 100


# ------------------------------------------------------------------------- next_delay

SCHEDULE = (1.0, 10.0, 60.0)


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_next_delay_jitter_bounds_with_a_seeded_rng(attempt: int) -> None:
    base = SCHEDULE[attempt - 1]
    rng = random.Random(1234)
    delays = [next_delay(SCHEDULE, attempt, jitter=0.2, rng=rng) for _ in range(300)]
    assert all(d is not None and base * 0.8 <= d <= base * 1.2 for d in delays)
    # ± jitter: both shorter and longer than the schedule occur, and not all the same
    assert min(d for d in delays if d is not None) < base < max(d for d in delays if d is not None)


def test_next_delay_is_deterministic_for_a_seed() -> None:
    a = [next_delay(SCHEDULE, 2, rng=random.Random(7)) for _ in range(3)]
    b = [next_delay(SCHEDULE, 2, rng=random.Random(7)) for _ in range(3)]
    assert a == b
    expected = 10.0 * (1 + random.Random(7).uniform(-0.2, 0.2))
    assert a[0] == pytest.approx(expected)


def test_next_delay_without_jitter_is_the_schedule() -> None:
    assert [next_delay(SCHEDULE, n, jitter=0) for n in (1, 2, 3)] == list(SCHEDULE)


@pytest.mark.parametrize(("retry_after", "expected_min", "expected_max"), [
    (30.0, 30.0, 30.0),  # longer than the jittered 1s: wins
    (0.5, 0.8, 1.2),  # shorter: the schedule wins
    (0.0, 0.8, 1.2),
    (None, 0.8, 1.2),
])
def test_next_delay_retry_after_wins_when_longer(retry_after: float | None, expected_min: float,
                                                 expected_max: float) -> None:
    got = next_delay(SCHEDULE, 1, retry_after, jitter=0.2, rng=random.Random(3))
    assert got is not None and expected_min <= got <= expected_max


@pytest.mark.parametrize(("schedule", "attempt"), [
    (SCHEDULE, 4),  # exhausted
    (SCHEDULE, 10),
    (SCHEDULE, 0),  # attempts count from 1
    (SCHEDULE, -1),
    ((), 1),  # no retries at all
])
def test_next_delay_none(schedule: Sequence[float], attempt: int) -> None:
    assert next_delay(schedule, attempt, retry_after=5.0, rng=random.Random(0)) is None


@given(
    schedule=st.lists(st.floats(min_value=0, max_value=86_400, allow_nan=False), min_size=1,
                      max_size=10),
    data=st.data(),
    jitter=st.floats(min_value=0, max_value=1, allow_nan=False),
    retry_after=st.none() | st.floats(min_value=0, max_value=200_000, allow_nan=False),
    seed=st.integers(),
)
def test_next_delay_property(schedule: list[float], data: st.DataObject, jitter: float,
                             retry_after: float | None, seed: int) -> None:
    attempt = data.draw(st.integers(min_value=1, max_value=len(schedule)))
    base = schedule[attempt - 1]
    got = next_delay(schedule, attempt, retry_after, jitter, random.Random(seed))
    assert got is not None and got >= 0
    eps = 1e-9 * max(1.0, base)
    within = base * (1 - jitter) - eps <= got <= base * (1 + jitter) + eps
    assert within or (retry_after is not None and got >= retry_after)
    if retry_after is not None:
        assert got >= retry_after


@given(schedule=st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=5),
       attempt=st.integers(min_value=-3, max_value=20))
def test_next_delay_none_outside_the_schedule(schedule: list[float], attempt: int) -> None:
    got = next_delay(schedule, attempt, rng=random.Random(0))
    assert (got is None) == (attempt < 1 or attempt > len(schedule))


# ------------------------------------------------------------------------- the loop

def retry(n: int, retry_after: float | None = None) -> Outcome:
    return Outcome(R, ErrorKind.HTTP_STATUS, 503, f"attempt {n}", retry_after)


class Script:
    """A fake attempt function answering from a list; records the attempt numbers."""

    def __init__(self, outcomes: Sequence[Outcome]) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[int] = []

    async def __call__(self, n: int) -> Outcome:
        self.calls.append(n)
        return self.outcomes[min(n, len(self.outcomes)) - 1]


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_retries_exactly_len_schedule_times_then_returns_the_last_outcome() -> None:
    script, sleep = Script([retry(n) for n in range(1, 10)]), Sleeps()
    outcome, attempts, _ = await run_with_retries(script, [1.0, 2.0, 3.0], jitter=0, sleep=sleep)
    assert attempts == 4
    assert script.calls == [1, 2, 3, 4]
    assert sleep.delays == [1.0, 2.0, 3.0]
    assert outcome == retry(4)  # the last one, not the first


async def test_a_first_attempt_made_by_the_caller_is_not_made_again() -> None:
    script, sleep = Script([retry(n) for n in range(1, 10)]), Sleeps()
    outcome, attempts, _ = await run_with_retries(script, [1.0, 2.0, 3.0], jitter=0,
                                                  sleep=sleep, first=2, made=retry(2))
    assert script.calls == [3, 4]  # attempt 2 was the caller's
    assert sleep.delays == [2.0, 3.0]  # the schedule goes on from attempt 2's delay
    assert (outcome, attempts) == (retry(4), 4)
    delivered = Outcome(D, None, 200, "", None)
    assert await run_with_retries(script, [1.0], made=delivered) == (delivered, 1, None)
    assert script.calls == [3, 4]


@pytest.mark.parametrize(("final", "position"), [
    (Outcome(D, status=200), 1),
    (Outcome(D, status=204), 3),
    (Outcome(F, ErrorKind.HTTP_STATUS, 404, "nope"), 1),
    (Outcome(F, ErrorKind.HTTP_STATUS, 404, "nope"), 2),
    (Outcome(G, ErrorKind.HTTP_STATUS, 410, "gone"), 1),
    (Outcome(G, ErrorKind.HTTP_STATUS, 410, "gone"), 3),
    (failure(ErrorKind.BLOCKED, "no"), 2),
    (Outcome(Verdict.PARK, ErrorKind.CONNECT, None, "circuit open", 12.0), 1),
    (Outcome(Verdict.PARK, ErrorKind.CONNECT, None, "circuit open", 12.0), 2),
], ids=["delivered-1", "delivered-3", "fail-1", "fail-2", "gone-1", "gone-3", "blocked-2",
        "park-1", "park-2"])
async def test_stops_at_once_on_a_final_outcome(final: Outcome, position: int) -> None:
    outcomes = [retry(n) for n in range(1, position)] + [final] + [retry(99)] * 5
    script, sleep = Script(outcomes), Sleeps()
    outcome, attempts, _ = await run_with_retries(script, [1.0, 2.0, 3.0, 4.0], jitter=0,
                                               sleep=sleep)
    assert outcome == final
    assert attempts == position
    assert script.calls == list(range(1, position + 1))
    assert sleep.delays == [1.0, 2.0, 3.0][:position - 1]


async def test_retry_after_stretches_the_wait() -> None:
    script = Script([retry(1, retry_after=50.0), retry(2, retry_after=0.5), Outcome(D, status=200)])
    sleep = Sleeps()
    outcome, attempts, _ = await run_with_retries(script, [1.0, 2.0, 3.0], jitter=0, sleep=sleep)
    assert outcome.ok and attempts == 3
    assert sleep.delays == [50.0, 2.0]  # longer Retry-After wins; shorter one does not


async def test_timeouts_and_connect_errors_are_retried_by_the_loop() -> None:
    script = Script([failure(ErrorKind.TIMEOUT, "t"), failure(ErrorKind.CONNECT, "c"),
                     Outcome(D, status=200)])
    outcome, attempts, _ = await run_with_retries(script, [1.0, 1.0, 1.0], jitter=0, sleep=Sleeps())
    assert outcome.ok and attempts == 3


async def test_empty_schedule_means_one_attempt() -> None:
    script, sleep = Script([retry(1), Outcome(D, status=200)]), Sleeps()
    outcome, attempts, _ = await run_with_retries(script, [], sleep=sleep)
    assert (outcome, attempts) == (retry(1), 1)
    assert sleep.delays == []


async def test_jittered_sleeps_stay_within_bounds() -> None:
    schedule = [1.0, 10.0, 100.0]
    script, sleep = Script([retry(n) for n in range(1, 5)]), Sleeps()
    _, attempts, _ = await run_with_retries(script, schedule, jitter=0.2, sleep=sleep)
    assert attempts == 4 and len(sleep.delays) == 3
    for base, delay in zip(schedule, sleep.delays, strict=True):
        assert base * 0.8 <= delay <= base * 1.2


async def test_first_continues_a_delivery_parked_earlier() -> None:
    """Back from a retry topic after 2 attempts: numbering and schedule continue at 3."""
    script, sleep = Script([retry(n) for n in range(1, 10)]), Sleeps()
    outcome, last, _ = await run_with_retries(script, [1.0, 2.0, 3.0, 4.0], jitter=0,
                                           sleep=sleep, first=3)
    assert script.calls == [3, 4, 5]
    assert sleep.delays == [3.0, 4.0]
    assert (outcome, last) == (retry(5), 5)


async def test_first_past_the_schedule_is_one_last_attempt() -> None:
    script, sleep = Script([retry(n) for n in range(1, 10)]), Sleeps()
    _, last, _ = await run_with_retries(script, [1.0, 2.0], jitter=0, sleep=sleep, first=3)
    assert (script.calls, sleep.delays, last) == ([3], [], 3)


@pytest.mark.parametrize(("inline_max", "calls", "sleeps"), [
    (float("inf"), [1, 2, 3, 4], [1.0, 5.0, 60.0]),
    (60.0, [1, 2, 3, 4], [1.0, 5.0, 60.0]),  # up to inline_max inclusive waits in memory
    (10.0, [1, 2, 3], [1.0, 5.0]),  # the 60 s wait is for the caller to park
    (5.0, [1, 2, 3], [1.0, 5.0]),
    (0.5, [1], []),
    (0.0, [1], []),
])
async def test_inline_max_stops_before_a_long_wait(inline_max: float, calls: list[int],
                                                   sleeps: list[float]) -> None:
    script, sleep = Script([retry(n) for n in range(1, 10)]), Sleeps()
    outcome, last, _ = await run_with_retries(script, [1.0, 5.0, 60.0], jitter=0, sleep=sleep,
                                           inline_max=inline_max)
    assert script.calls == calls
    assert sleep.delays == sleeps
    assert (outcome, last) == (retry(calls[-1]), calls[-1])


@pytest.mark.parametrize(("inline_max", "parked_for"), [
    (float("inf"), None), (10.0, 60.0), (0.5, 1.0), (80.0, None)])
async def test_the_delay_returned_is_the_one_that_stopped_the_waiting(
        inline_max: float, parked_for: float | None) -> None:
    """One draw of the jittered delay decides both "too long to wait in memory" and how
    long the caller parks the delivery for."""
    script, sleep = Script([retry(n) for n in range(1, 10)]), Sleeps()
    *_, delay = await run_with_retries(script, [1.0, 5.0, 60.0], jitter=0.2, sleep=sleep,
                                       inline_max=inline_max)
    if parked_for is None:
        assert delay is None  # the schedule is spent
    else:
        assert delay is not None and parked_for * 0.8 <= delay <= parked_for * 1.2
        assert delay > inline_max


async def test_inline_max_applies_to_a_long_retry_after() -> None:
    script, sleep = Script([retry(1, retry_after=3600.0), Outcome(D, status=200)]), Sleeps()
    outcome, last, _ = await run_with_retries(script, [1.0, 1.0], jitter=0, sleep=sleep,
                                           inline_max=10.0)
    assert (outcome.verdict, outcome.retry_after, last) == (R, 3600.0, 1)
    assert sleep.delays == []


@pytest.mark.parametrize("stop_first", [False, True], ids=["wait-then-stop", "stop-then-wait"])
@pytest.mark.parametrize(("inline_max", "stops"), [
    (math.inf, [False, False, True]),  # 1 s, 5 s waited, then the schedule is spent
    (2.0, [False, True]),  # 1 s waited; 5 s is the caller's to park for
    (0.5, [True]),
])
def test_the_plan_decides_alike_whichever_of_wait_and_stop_tenacity_asks_first(
        stop_first: bool, inline_max: float, stops: list[bool]) -> None:
    """tenacity 9.x asks wait, then stop; 8.2 asks stop, then wait (and skips wait when stop
    says stop). Either way: the same decision, one draw of the jittered delay per attempt."""
    schedule = [1.0, 5.0]
    plan = Plan(schedule, first=1, jitter=0.2, inline_max=inline_max)
    state = RetryCallState(AsyncRetrying(), fn=None, args=(), kwargs={})
    for n, expected in enumerate(stops, start=1):
        state.set_result(retry(n))
        if stop_first:
            stopped = plan.stop(state)
            waited = None if stopped else plan.wait(state)
        else:
            waited = plan.wait(state)
            stopped = plan.stop(state)
        assert stopped is expected, (n, plan.upcoming)
        if n <= len(schedule):  # a delay was due: the one drawn, read by both
            base = schedule[n - 1]
            assert plan.upcoming is not None and base * 0.8 <= plan.upcoming <= base * 1.2
            assert waited is None or waited == plan.upcoming
            assert plan.wait(state) == plan.upcoming and plan.stop(state) is stopped  # again
        else:
            assert plan.upcoming is None
        state.prepare_for_next_attempt()


# -- what becomes of a delivery once its attempts are over --------------------------------
PARKED_UNSENT = Outcome(Verdict.PARK, ErrorKind.CIRCUIT_OPEN, None, "circuit open", 30.0)
ENDING_TABLE = [
    # outcome of the last attempt, delay drawn before the next, retry topics?, ending
    (classify_status(200), None, True, Ending.DELIVERED),
    (classify_status(204), None, False, Ending.DELIVERED),
    (classify_status(410), None, True, Ending.DISABLE),
    (classify_status(410), None, False, Ending.DISABLE),
    (PARKED_UNSENT, None, True, Ending.PARK_UNSENT),
    (PARKED_UNSENT, None, False, Ending.WAIT_UNSENT),
    (classify_status(503), 60.0, True, Ending.PARK),  # the next delay is too long for memory
    (classify_status(503), None, True, Ending.DEAD_LETTER),  # the schedule is spent
    (classify_status(503), 60.0, False, Ending.DEAD_LETTER),  # (no retry topics: spent)
    (failure(ErrorKind.TIMEOUT, "slow"), 5.0, True, Ending.PARK),
    (failure(ErrorKind.CONNECT, "refused"), None, True, Ending.DEAD_LETTER),
    (classify_status(400), None, True, Ending.DEAD_LETTER),
    (classify_status(301), None, True, Ending.DEAD_LETTER),
    (failure(ErrorKind.BLOCKED, "10.0.0.1"), None, True, Ending.DEAD_LETTER),
    (failure(ErrorKind.RENDER, "bad"), None, True, Ending.DEAD_LETTER),
    (failure(ErrorKind.INTERNAL, "bug"), None, True, Ending.DEAD_LETTER),
]


@pytest.mark.parametrize(("outcome", "delay", "parking", "expected"), ENDING_TABLE)
def test_ending(outcome: Outcome, delay: float | None, parking: bool,
                expected: Ending) -> None:
    assert ending(outcome, delay, parking) is expected


def test_an_outcome_is_a_slotted_dataclass_with_final_fields() -> None:
    """Not frozen, so that its __init__ sets each slot directly (a frozen one's calls
    object.__setattr__ per field: one outcome per parked delivery); unchanged all the
    same (mypy's Final), and hashed and compared as the frozen one was."""
    assert not Outcome.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert hasattr(Outcome, "__slots__")
    hints = typing.get_type_hints(Outcome, vars(retries_module), include_extras=True)
    assert all(typing.get_origin(hint) is typing.Final for hint in hints.values())
    a = Outcome(Verdict.RETRY, ErrorKind.HTTP_STATUS, 503, "busy", 1.5)
    b = Outcome(Verdict.RETRY, ErrorKind.HTTP_STATUS, 503, "busy", 1.5)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Outcome(Verdict.RETRY, ErrorKind.HTTP_STATUS, 503, "busy")
