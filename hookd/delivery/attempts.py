"""One attempt of a delivery: its hook's rate limit, its OAuth2 token, its log line."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from aiolimiter import AsyncLimiter

from hookd.config import OAuth2Auth, Rate
from hookd.delivery.retries import ErrorKind, Outcome, Verdict, failure
from hookd.delivery.sender import Sender
from hookd.errors import BlockedDestination
from hookd.events.decode import Event
from hookd.requests.oauth import TokenCache
from hookd.requests.render import CompiledHook, Request
from hookd.telemetry.hookstats import HookStats
from hookd.telemetry.lines import Lines, delivery_context
from hookd.telemetry.redact import MASK

_DELIVERED = Verdict.DELIVERED  # (`Outcome.ok`, without a property call per attempt)
_PARK = Verdict.PARK
log = structlog.get_logger("hookd.attempts")  # (lines when no Lines is given: tests)


def to_ms(seconds: float) -> float:
    """An attempt's duration in milliseconds, to a tenth: `round(seconds * 1000, 1)` in half
    its time (round() with digits converts through decimal digits, ~1.5 k instructions per
    attempt). The same value except at an exact tie, a duration that is a binary fraction
    ending in 5 at the second decimal of the millisecond (0.03125 s): rounded up here,
    to even there."""
    return int(seconds * 10_000.0 + 0.5) / 10


@dataclass(slots=True)  # (one per delivery: made and read with fewer steps)
class Job:
    """One delivery of one event to one hook, fresh or back from a retry topic."""

    hook_id: str
    event: Event
    key: bytes | None
    attempts: int = 0  # made so far
    first_attempt_at: float | None = None
    alone: bool = False  # too large (or not encodable) to join a parked group: parked alone


class Line:
    """A delivery's log context, given to each of its lines off the common way (cheaper
    than a bound logger, which copies its context and builds a new logger): `context`,
    the fields that lead each line (`lines.delivery_context`), and `event`, the event's
    name, the line's last field ("event")."""

    __slots__ = ("context", "event", "lines")

    def __init__(self, lines: Lines, context: dict[str, Any], event: str | None = None
                 ) -> None:
        self.lines, self.context, self.event = lines, context, event

    @classmethod
    def of(cls, lines: Lines, job: Job, hook_id: str, msg_id: str, url: str) -> Line:
        """The log context of `job`'s delivery to `url`, as `msg_id`."""
        meta = job.event.meta
        return cls(lines, delivery_context(hook_id, msg_id, url, meta.topic, meta.partition,
                                           meta.offset), job.event.name)

    def info(self, msg: str, **fields: Any) -> None:
        self.lines.info(msg, self.context, fields, self.event)

    def warning(self, msg: str, **fields: Any) -> None:
        self.lines.warning(msg, self.context, fields, self.event)


@dataclass
class Attempts:
    """Makes each attempt of a delivery: through the sender, with a token from the OAuth2
    cache where the hook wants one, after the hook's rate limiter (one per hook)."""

    sender: Sender
    tokens: TokenCache | None = None
    # each attempt made is counted here (its status class and duration only when `timed`:
    # /metrics on); each failed one is its hook's last error
    stats: HookStats | None = None
    timed: bool = True
    # each attempt's line (None: none is written; `hookd send` prints its own)
    lines: Lines | None = field(default_factory=lambda: Lines(log.bind()))
    _limiters: dict[str, tuple[Rate, AsyncLimiter]] = field(default_factory=dict)

    def plain(self, hook: CompiledHook) -> bool:
        """No rate limit and no OAuth2 token to wait for: the caller may send through the
        sender itself and `record` the outcome (one coroutine frame less per resume).
        Asked only of a hook that `waits` (decided at load): the others are plain."""
        return not hook.waits or (hook.config.rate_limit is None and (
            self.tokens is None or not isinstance(hook.config.auth, OAuth2Auth)))

    async def attempt(self, job: Job, hook: CompiledHook, request: Request, attempt_no: int
                      ) -> Outcome:
        if hook.config.rate_limit is not None:
            await self._rate(hook)
        started = time.monotonic()
        if self.tokens is not None and isinstance(hook.config.auth, OAuth2Auth):
            outcome = await self._send_oauth2(hook, request, hook.config.auth, self.tokens)
        else:
            outcome = await self.sender.attempt(request, hook.signer, hook.timeout,
                                                hook.tls, None, hook.proxy)
        return self.record(job, hook, outcome, attempt_no, started, request)

    def record(self, job: Job, hook: CompiledHook, outcome: Outcome, attempt_no: int,
               started: float, request: Request) -> Outcome:
        """An attempt's outcome, of `request` sent at `started` (monotonic): counted, and
        its line. An attempt answered 2xx ends its delivery: its figures (the delivery,
        its attempt, its lag: `HookStats.delivered`) and its line (`Lines.delivered`, from
        the job's event and the request: no context built) each in one call."""
        verdict = outcome.verdict
        if verdict is _PARK:  # the endpoint's circuit is open: nothing sent
            return outcome
        now = time.time()
        if job.first_attempt_at is None:
            job.first_attempt_at = now
        seconds = time.monotonic() - started
        stats, lines, event = self.stats, self.lines, job.event
        if verdict is _DELIVERED:  # the delivery's end (the caller counts nothing)
            meta = event.meta
            if stats is not None:
                stats.delivered(hook.id, meta.timestamp, now, seconds if self.timed else None)
            if lines is not None:
                lines.delivered(hook.id, request.webhook_id, request.url, meta.topic,
                                meta.partition, meta.offset, event.name, outcome.status,
                                attempt_no, to_ms(seconds), now)
            return outcome
        stat = stats.of(hook.id) if stats is not None else None
        if stat is not None and self.timed:
            stat.attempt(outcome.status, seconds)
        # what happens next (a retry in memory, parked, dead-lettered) has its own line
        if lines is not None:
            Line.of(lines, job, hook.id, request.webhook_id, request.url).warning(
                "delivery", outcome="failed", retryable=verdict is Verdict.RETRY,
                status=outcome.status, attempt=attempt_no, duration_ms=to_ms(seconds),
                error_kind=str(outcome.kind), error=outcome.message)
        if stat is not None:
            stat.error(outcome.message or str(outcome.status or outcome.kind))
        return outcome

    async def _send_oauth2(self, hook: CompiledHook, request: Request, auth: OAuth2Auth,
                           tokens: TokenCache) -> Outcome:
        for fresh in (False, True):  # a 401 refreshes the token once
            if fresh:
                tokens.invalidate(auth)
            try:
                token = await tokens.token(auth, hook.timeout, hook.proxy)
            except BlockedDestination as exc:  # the SSRF guard: fails at once, like a hook
                return failure(ErrorKind.BLOCKED, f"oauth2 token: {exc}")
            except Exception as exc:  # TokenError, refused, timeout: retried later
                return failure(ErrorKind.CONNECT, f"oauth2 token: {type(exc).__name__}: {exc}")
            outcome = await self.sender.attempt(request, hook.signer, hook.timeout,
                                                hook.tls,
                                                {"authorization": f"Bearer {token}"},
                                                hook.proxy)
            if token and token in outcome.message:  # an error page echoing what it was sent:
                # the log and the dead letter only know the configured secrets, not this
                outcome = replace(outcome, message=outcome.message.replace(token, MASK))
            if outcome.status != 401:
                break
        return outcome

    async def _rate(self, hook: CompiledHook) -> None:
        rate = hook.config.rate_limit  # parsed by the config model, once
        assert rate is not None
        current = self._limiters.get(hook.id)
        # the same config: the same object; after a reload an equal rate keeps its limiter
        if current is None or (current[0] is not rate and current[0] != rate):
            current = self._limiters[hook.id] = (rate, AsyncLimiter(rate.limit, rate.period))
        await current[1].acquire()
