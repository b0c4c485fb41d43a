"""From a Kafka record to final deliveries: decode, match, fan out, retry, dead-letter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import TopicPartition

from hookd.deadletter import DeadLetter, DeadLetterSink, Source
from hookd.delivery import Sender
from hookd.errors import DecodeError, RenderError
from hookd.events import Event, decode_event, make_meta
from hookd.loader import Runtime
from hookd.offsets import OffsetTracker, Ticket
from hookd.redact import Redactor
from hookd.render import CompiledHook, Request
from hookd.retries import ErrorKind, Outcome, Verdict, run_with_retries

log = structlog.get_logger("hookd.dispatch")


@dataclass
class Counters:
    delivered: int = 0
    failed: int = 0
    dead_lettered: int = 0
    retrying: int = 0  # deliveries waiting for their next attempt right now
    decode_errors: int = 0
    events: int = 0


@dataclass
class Dispatcher:
    """Owns every in-flight event until all of its deliveries are final."""

    sender: Sender
    dead_letters: DeadLetterSink
    tracker: OffsetTracker
    runtime: Callable[[], Runtime]
    redactor: Callable[[], Redactor]
    counters: Counters = field(default_factory=Counters)
    disabled: dict[str, str] = field(default_factory=dict)  # hook id -> why (410 Gone)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _chains: dict[tuple[str, bytes], asyncio.Future[None]] = field(default_factory=dict)

    @property
    def pending(self) -> int:
        """Events not final yet (for backpressure)."""
        return len(self._tasks)

    def submit(self, record: Any) -> None:
        """Take one ConsumerRecord; returns at once, the work runs as a task."""
        ticket = self.tracker.start(_tp(record), record.offset)
        task = asyncio.create_task(self._process(record, ticket))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float) -> int:
        """Wait up to `timeout` for in-flight events; cancel the rest. Returns how many."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        left = list(self._tasks)
        for task in left:
            task.cancel()
        if left:
            await asyncio.gather(*left, return_exceptions=True)
        return len(left)

    def reset_disabled(self) -> None:
        self.disabled.clear()

    async def _process(self, record: Any, ticket: Ticket) -> None:
        runtime = self.runtime()  # the config generation current at dispatch time
        meta = make_meta(record.topic, record.partition, record.offset, record.key,
                         record.timestamp, record.headers)
        self.counters.events += 1
        try:
            event = decode_event(record.value, meta, runtime.config.events.name_field)
        except DecodeError as exc:
            self.counters.decode_errors += 1
            log.warning("bad record", topic=meta.topic, partition=meta.partition,
                        offset=meta.offset, error=str(exc))
            await self._dead_letter(DeadLetter(
                None, None, None, None, record.value or b"", ErrorKind.DECODE, None, str(exc),
                0, None, None, Source(meta.topic, meta.partition, meta.offset), record.key))
            self.tracker.finish(ticket)
            return
        hooks = [h for h in runtime.index.match(event.name, event.payload)
                 if h.id not in self.disabled]
        if hooks:
            await asyncio.gather(*(self._ordered(h, event, record.key) for h in hooks))
        self.tracker.finish(ticket)

    async def _ordered(self, hook: CompiledHook, event: Event, key: bytes | None) -> None:
        """Deliveries of one key to one hook go out in offset order."""
        if key is None:
            return await self._deliver(hook, event, key)
        chain_key = (hook.id, key)
        previous = self._chains.get(chain_key)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._chains[chain_key] = mine
        try:
            if previous is not None:
                await asyncio.shield(previous)
            await self._deliver(hook, event, key)
        finally:
            mine.set_result(None)
            if self._chains.get(chain_key) is mine:
                del self._chains[chain_key]

    async def _deliver(self, hook: CompiledHook, event: Event, key: bytes | None) -> None:
        meta = event.meta
        source = Source(meta.topic, meta.partition, meta.offset)
        try:
            request = hook.render(event)
        except RenderError as exc:
            self.counters.failed += 1
            log.error("delivery", outcome="dead_lettered", hook=hook.id, _event=event.name,
                      error_kind="render", error=str(exc), attempt=0, topic=meta.topic,
                      partition=meta.partition, offset=meta.offset)
            await self._dead_letter(DeadLetter(
                hook.id, event.id, event.name, event.payload, None, ErrorKind.RENDER, None,
                str(exc), 0, None, None, source, key))
            return
        bound = log.bind(hook=hook.id, _event=event.name, webhook_id=request.webhook_id,
                         url=self.redactor()(request.url), topic=meta.topic,
                         partition=meta.partition, offset=meta.offset)
        first = time.time()
        outcome, attempts = await run_with_retries(
            lambda n: self._attempt(hook, request, n, bound), hook.schedule,
            self.runtime().config.delivery.retry.jitter, self._backoff)
        if outcome.ok:
            self.counters.delivered += 1
            return
        self.counters.failed += 1
        if outcome.verdict is Verdict.GONE:
            self.disabled[hook.id] = f"410 Gone from {self.redactor()(request.url)}"
            bound.warning("hook disabled until the next reload", reason="410 Gone")
        await self._dead_letter(DeadLetter(
            hook.id, event.id, event.name, event.payload, None, outcome.kind or ErrorKind.CONNECT,
            outcome.status, outcome.message, attempts, first, time.time(), source, key))

    async def _attempt(self, hook: CompiledHook, request: Request, attempt: int,
                       bound: Any) -> Outcome:
        started = time.monotonic()
        outcome = await self.sender.attempt(request, hook.signer, hook.timeout, hook.config.tls)
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        final = outcome.verdict is not Verdict.RETRY or attempt > len(hook.schedule)
        name = ("delivered" if outcome.ok else "dead_lettered" if final else "retrying")
        level = bound.info if outcome.ok else bound.warning
        level("delivery", outcome=name, status=outcome.status, attempt=attempt,
              duration_ms=duration_ms, **({"error_kind": str(outcome.kind),
                                           "error": self.redactor()(outcome.message)}
                                          if not outcome.ok else {}))
        return outcome

    async def _backoff(self, delay: float) -> None:
        self.counters.retrying += 1
        try:
            await asyncio.sleep(delay)
        finally:
            self.counters.retrying -= 1

    async def _dead_letter(self, letter: DeadLetter) -> None:
        """Publish until the broker acks; the offset must not move before that."""
        delay = 0.5
        while True:
            try:
                await self.dead_letters.publish(letter)
                self.counters.dead_lettered += 1
                return
            except Exception as exc:  # any broker trouble: keep trying
                log.error("dead-letter publish failed, retrying", error=str(exc),
                          hook=letter.hook, offset=letter.source.offset)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)



def _tp(record: Any) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)
