"""What becomes of a delivery once it leaves the common way (its first attempt did not
deliver, or it waits for a rate limit or an OAuth2 token first): retries in memory,
parking, dead letters, a 410's disabling; run in the delivery's own task."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from hookd.delivery.attempts import Attempts, Job, Line
from hookd.delivery.retries import (
    Ending,
    ErrorKind,
    Outcome,
    Verdict,
    ending,
    failure,
    run_with_retries,
)
from hookd.errors import RenderError
from hookd.kafka.outcomelog import OutcomeLog
from hookd.kafka.parking import ParkingLot
from hookd.pipeline.endings import Endings
from hookd.pipeline.runtime import Runtime
from hookd.requests.render import CompiledHook, Request
from hookd.requests.signing import webhook_id
from hookd.telemetry.hookstats import HookStat, HookStats
from hookd.telemetry.lines import Lines
from hookd.telemetry.redact import Redactor


@dataclass
class Afterwards:
    attempts: Attempts
    endings: Endings
    stats: HookStats
    lines: Lines
    runtime: Callable[[], Runtime]
    redactor: Callable[[], Redactor]
    disabled: dict[str, str]  # the dispatcher's: hook id -> why (410 Gone)
    parking: ParkingLot | None = None
    outcomes: OutcomeLog | None = None

    def line(self, job: Job, hook: CompiledHook, msg_id: str, url: str) -> Line:
        """A delivery's log context off the common way (the log processor masks secrets)."""
        return Line.of(self.lines, job, hook.id, msg_id, url)

    async def attempted(self, job: Job, hook: CompiledHook, request: Request) -> None:
        """The first attempt of a hook with a rate limit or an OAuth2 token, then as
        `after`."""
        first = job.attempts + 1
        made = await self.attempts.attempt(job, hook, request, first)
        if not await self._if_delivered(job, hook, made, first):
            await self.after(job, hook, request, made, first)

    async def _if_delivered(self, job: Job, hook: CompiledHook, made: Outcome,
                            attempt: int) -> bool:
        """Attempt `attempt` delivered (counted by `Attempts.record`): its outcome record
        written."""
        if not made.ok:
            return False
        job.attempts = attempt
        if self.outcomes is not None:
            await self.outcomes.delivered(job, made.status)
        return True

    async def after(self, job: Job, hook: CompiledHook, request: Request, made: Outcome,
                    first: int) -> None:
        """The first attempt did not deliver: retries, parking, or the end; while a circuit
        is open and nothing can be parked, the delivery waits in memory and starts over."""
        while await self._not_delivered(job, hook, request, made, first):
            if hook.id in self.disabled:
                return await self.endings.fail(
                    job, failure(ErrorKind.HTTP_STATUS, self.disabled[hook.id]))
            try:
                request = hook.render(job.event)
            except RenderError as exc:
                return await self.endings.fail(job, failure(ErrorKind.RENDER, str(exc)))
            first = job.attempts + 1
            made = await self.attempts.attempt(job, hook, request, first)
            if await self._if_delivered(job, hook, made, first):
                return None

    async def park_unrendered(self, job: Job, hook: CompiledHook, closed: Outcome) -> None:
        """Its endpoint is unavailable: parked (or gathered) before it is rendered."""
        wait = closed.retry_after or 0.0
        if await self.endings.park_unsent(job, closed, wait):
            return
        await self.endings.park(job, closed, wait, self.line(
            job, hook, webhook_id(job.event.id, hook.id), hook.url.source))

    async def _not_delivered(self, job: Job, hook: CompiledHook, request: Request,
                             made: Outcome, first: int) -> bool:
        """The first attempt did not deliver: retries (in memory, then parked), or the end.
        True: to be tried again from the start (a circuit opened, and nothing is parked)."""
        bound = self.line(job, hook, request.webhook_id, request.url)
        if made.verdict is not Verdict.RETRY:
            outcome, last, delay = made, first, None
        else:
            delivery = self.runtime().config.delivery
            stat = self.stats.of(hook.id)
            outcome, last, delay = await run_with_retries(
                lambda n: self.attempts.attempt(job, hook, request, n), hook.schedule,
                delivery.retry.jitter, lambda d: self._backoff(d, stat), first=first, made=made,
                inline_max=delivery.retry.inline_max if self.parking is not None
                else float("inf"))
        job.attempts = last if outcome.verdict is not Verdict.PARK else last - 1
        end = ending(outcome, delay, self.parking is not None)
        if end is Ending.DELIVERED:  # (counted by `Attempts.record`)
            if self.outcomes is not None:
                await self.outcomes.delivered(job, outcome.status)
        elif end is Ending.DISABLE:
            self.disabled[hook.id] = f"410 Gone from {self.redactor()(request.url)}"
            bound.warning("hook disabled until the next reload", reason="410 Gone")
            await self.endings.fail(job, outcome)
        elif end is Ending.WAIT_UNSENT:  # no retry topics: wait in memory, no attempt spent
            await self._backoff(outcome.retry_after or 0.0, self.stats.of(hook.id))
            return True
        elif end is Ending.PARK_UNSENT:
            wait = outcome.retry_after or 0.0
            if not await self.endings.park_unsent(job, outcome, wait):
                # (if it was, the circuit opened meanwhile: gathered with the others)
                await self.endings.park(job, outcome, wait, bound)
        elif end is Ending.PARK:
            assert delay is not None
            await self.endings.park(job, outcome, delay, bound)  # the delay that was drawn
        else:
            await self.endings.fail(job, outcome)
        return False

    async def _backoff(self, delay: float, stat: HookStat) -> None:
        """Wait in memory for a delivery's next attempt."""
        stat.retried += 1
        stat.waiting += 1
        try:
            await asyncio.sleep(delay)
        finally:
            stat.waiting -= 1
