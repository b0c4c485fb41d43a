"""From a record to final deliveries: decode, match, fan out, attempt, park or dead-letter."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog

from hookd.delivery.attempts import Attempts, Job
from hookd.delivery.retries import (
    ErrorKind,
    Outcome,
    failure,
)
from hookd.delivery.sender import Sender
from hookd.errors import DecodeError, RenderError
from hookd.events.decode import Event, decode_event, make_meta
from hookd.kafka.deadletter import DeadLetter, DeadLetterSink, Source
from hookd.kafka.outcomelog import Entry, OutcomeLog
from hookd.kafka.parking import ParkingLot, read_parked
from hookd.kafka.writes import WriteWatch
from hookd.loops import RunningLoop
from hookd.pipeline.afterwards import Afterwards
from hookd.pipeline.deliveries import FOLLOWS, IN_BATCH, Chains, Delivery
from hookd.pipeline.endings import Counters, Endings
from hookd.pipeline.inflight import Done, InFlight, Work
from hookd.pipeline.runtime import Runtime
from hookd.requests.oauth import TokenCache
from hookd.requests.render import CompiledHook
from hookd.telemetry.hookstats import HookStats
from hookd.telemetry.logs import Lines
from hookd.telemetry.redact import Redactor

log = structlog.get_logger("hookd.dispatch")
# deliveries started (rendered, signed, sent or queued for a slot) per iteration of the
# loop: the loop reads answers and the next fetch between each SLICE. A fetch of 200
# records matched by three hooks is 600 deliveries: started together, the loop read no
# answer until the last was rendered (20 to 40 ms on a slow core), and every answer
# waiting meanwhile counted as latency.
SLICE = 50


@dataclass
class Dispatcher:
    """Owns every in-flight record until all of its deliveries are final or parked."""

    sender: Sender
    dead_letters: DeadLetterSink
    runtime: Callable[[], Runtime]
    redactor: Callable[[], Redactor]
    parking: ParkingLot | None = None  # None: every retry waits in memory
    tokens: TokenCache | None = None
    disabled: dict[str, str] = field(default_factory=dict)  # hook id -> why (410 Gone)
    stats: HookStats = field(default_factory=HookStats)  # per hook: `hookd status`, /metrics
    counters: Counters = field(init=False)  # the totals: records, and the sums of `stats`
    timed: bool = True  # each attempt's duration and status class into `stats` (/metrics)
    writes: WriteWatch | None = None  # parked and dead-letter writes that keep failing
    outcomes: OutcomeLog | None = None  # the delivery log: told each final or parked one
    _work_of: InFlight = field(default_factory=InFlight)  # the records' work, by partition
    _chains: Chains = field(init=False, repr=False)  # the order per key
    _attempts: Attempts = field(init=False, repr=False)  # of `sender` and `tokens`
    _endings: Endings = field(init=False, repr=False)  # parking and dead letters
    _afterwards: Afterwards = field(init=False, repr=False)  # off the common way
    _loop: RunningLoop = field(default_factory=RunningLoop)
    _ready: deque[Delivery] = field(default_factory=deque)  # to start, SLICE at a time
    _starting: bool = False  # a slice is due in the next iteration
    # a logger of the logging set-up in force when the dispatcher is made: the module's
    # lazy proxy would look the configuration up again for every delivery
    _lines: Lines = field(default_factory=lambda: Lines(log.bind()))

    def __post_init__(self) -> None:
        self._attempts = Attempts(self.sender, self.tokens, self.stats, self.timed)
        self.counters = Counters(self.stats)
        self._endings = Endings(self.dead_letters, self.redactor, self.counters, self.parking,
                                self.writes, self.outcomes)
        self._chains = Chains(self._go)
        self._afterwards = Afterwards(self._attempts, self._endings, self.stats, self._lines,
                                      self.runtime, self.redactor, self.disabled, self.parking,
                                      self.outcomes)

    @property
    def pending(self) -> int:
        """Records not final yet (for backpressure)."""
        return self._work_of.records

    def submit(self, record: Any, done: Done) -> None:
        """A source record: decoded and matched now, one task per delivery; `done()` once
        every delivery it caused is final."""
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
            letter = DeadLetter(None, None, None, None, record.value, ErrorKind.DECODE,
                                None, str(exc), 0, None, None,
                                Source(meta.topic, meta.partition, meta.offset), record.key)
            return self._work_of.run(record, done, [self._endings.bad_record(letter)])
        hooks = runtime.index.match(event.name, event.payload)
        if self.disabled and hooks:  # (410 Gone) skipped until the next reload
            for h in hooks:
                if h.id in self.disabled:
                    self.stats.of(h.id).skipped += 1
            if self.outcomes is not None:  # their records are the record's work too
                return self._skipping(record, done, event, hooks, self.outcomes)
            hooks = [h for h in hooks if h.id not in self.disabled]
        if not hooks:
            self.counters.unmatched += 1
            return done()
        self._work_of.run(record, done,
                          [self._delivery(Job(h.id, event, record.key), h) for h in hooks])

    def _skipping(self, record: Any, done: Done, event: Event, hooks: list[CompiledHook],
                  outcomes: OutcomeLog) -> None:
        """Some hooks disabled, the log on: the deliveries and the skipped ones' records."""
        work: list[Work] = [
            outcomes.skipped(Job(h.id, event, record.key), self.disabled[h.id])
            if h.id in self.disabled else self._delivery(Job(h.id, event, record.key), h)
            for h in hooks]
        if all(h.id in self.disabled for h in hooks):
            self.counters.unmatched += 1
        self._work_of.run(record, done, work)

    def submit_parked(self, record: Any, done: Done) -> None:
        """A record of a retry topic whose time has come: its deliveries (one, or a group
        parked unsent), re-rendered from their hook's current definition."""
        try:
            parked = read_parked(record.value)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("unreadable record in a retry topic, dead-lettered", topic=record.topic,
                      offset=record.offset, error=str(exc))
            return self._work_of.run(record, done, [self._endings.bad_record(DeadLetter(
                None, None, None, None, record.value, ErrorKind.DECODE, None,
                f"retry record: {exc}", 0, None, None,
                Source(record.topic, record.partition, record.offset), record.key))])
        runtime, work = self.runtime(), list[Work]()  # (typed: two kinds are appended)
        for p in parked:
            hook = runtime.hook(p.hook)
            stat = self.stats.of(p.hook)
            stat.returned += 1
            if hook is None or not hook.config.enabled:
                stat.skipped += 1
                log.warning("parked delivery dropped: its hook was removed or disabled",
                            hook=p.hook, _event=p.event.name, event_id=p.event.id)
                if self.outcomes is not None:
                    work.append(self.outcomes.skipped(
                        Job(p.hook, p.event, p.key, p.attempts, p.first_attempt_at),
                        "its hook was removed or disabled while the delivery was parked"))
                continue
            work.append(self._delivery(Job(p.hook, p.event, p.key, p.attempts,
                                           p.first_attempt_at), hook))
        if not work:
            return done()
        self._work_of.run(record, done, work)

    def _delivery(self, job: Job, hook: CompiledHook) -> Work:
        """A delivery, started in its turn: in the next slice of the loop, once the one
        before it of its key (to that hook) has ended."""
        delivery = Delivery(self._loop, job, hook, self._chains)
        self._ready.append(delivery)
        if not self._starting:
            self._starting = True
            self._loop().call_soon(self._start_slice)
        return delivery

    def _start_slice(self) -> None:
        ready, chains = self._ready, self._chains
        last = chains.last
        for _ in range(min(SLICE, len(ready))):
            delivery = ready.popleft()
            if delivery.state:  # cancelled (revoked) before its turn
                continue
            chain = delivery.chain
            if chain is not None:
                if chain not in last:  # (`chains.join`'s common case, without the call)
                    last[chain] = delivery
                elif not chains.join(delivery):
                    continue  # it waits for the one before it
            self._go(delivery)
        self._starting = bool(ready)
        if ready:
            self._loop().call_soon(self._start_slice)

    def _go(self, delivery: Delivery) -> None:
        """Its turn: the common way is rendered, signed and sent from here, and ends in
        `_answered` without a task; anything else is a task (`_off_the_common_way`)."""
        delivery.started = True
        job, hook = delivery.job, delivery.hook
        if hook.id in self.disabled:
            return self._task(delivery, self._endings.fail(
                job, failure(ErrorKind.HTTP_STATUS, self.disabled[hook.id])))
        if self.parking is not None and hook.endpoint is not None:
            closed = self.sender.unavailable(hook.endpoint, hook.id)
            if closed is not None:  # parked unrendered, with the others of its hook
                parking = self._endings.gather(job, closed, closed.retry_after or 0.0)
                if parking is None:  # (too large to join them: parked alone)
                    return self._task(delivery, self._afterwards.park_unrendered(job, hook, closed))
                delivery.handle = FOLLOWS
                parking.add_done_callback(lambda done: self._parked(delivery, done))
                if delivery.chain is not None:  # the next of its key need not wait for the
                    self._chains.ended(delivery)  # ack: it joins the group after it, if it
                    # is parked too (their order kept in the record)
                return None
        try:
            request = hook.render(job.event)
        except RenderError as exc:  # render() turns every template error into this
            return self._task(delivery, self._endings.fail(job, failure(ErrorKind.RENDER,
                                                                        str(exc))))
        delivery.request = request
        delivery.line = line = self._afterwards.line(job, hook, request.webhook_id, request.url)
        if not self._attempts.plain(hook):  # a rate limit or an OAuth2 token to wait for
            return self._task(delivery, self._afterwards.attempted(job, hook, request, line))
        delivery.sent_at = time.monotonic()
        handle = self.sender.begin(request, hook.signer, hook.timeout, hook.tls, None,
                                   hook.proxy, partial(self._answered, delivery))
        if delivery.request is request:  # (not answered at once)
            delivery.handle = handle
        return None

    def _answered(self, delivery: Delivery, outcome: Outcome) -> None:
        """Its attempt ended: delivered, the common way's end; anything else goes on in
        a task."""
        request, delivery.request, delivery.handle = delivery.request, None, None
        assert request is not None and delivery.line is not None
        job, hook = delivery.job, delivery.hook
        first = job.attempts + 1
        made = self._attempts.record(job, hook, outcome, first, delivery.sent_at,
                                     delivery.line)
        if made.ok:
            job.attempts = first
            if self.outcomes is not None:  # its end is its outcome record's ack; the next
                if delivery.chain is not None:  # of its key goes now, as it would without
                    self._chains.ended(delivery)
                return self._log(delivery, self.outcomes.delivered_entry(
                    job, made.status, request.webhook_id))
            if not delivery.done():  # (`_ended`, inline: the common way's end)
                delivery.finish()
            if delivery.chain is not None:
                self._chains.ended(delivery)
            return None
        self._task(delivery, self._afterwards.after(job, hook, request, delivery.line, made,
                                                       first))

    def _log(self, delivery: Delivery, entry: Entry) -> None:
        """Its outcome record into the log's open batch, its end at the batch's ack: no
        task (one per delivery cost a third again of the whole delivery)."""
        assert self.outcomes is not None
        if self.outcomes.append(entry, partial(self._logged, delivery, entry)):
            delivery.handle = IN_BATCH
        else:  # (not batched: written on its own)
            self._task(delivery, self.outcomes.write_entry(entry))

    def _logged(self, delivery: Delivery, entry: Entry, failed: BaseException | None) -> None:
        if delivery.state:  # cancelled meanwhile (revoked, the shutdown): not final
            return
        if failed is None:
            delivery.handle = None
            return self._ended(delivery)
        assert self.outcomes is not None  # the batch failed: tried until acked, alone
        self._task(delivery, self.outcomes.write_entry(entry, failed))

    def _parked(self, delivery: Delivery, parking: asyncio.Future[str]) -> None:
        delivery.handle = None
        if parking.cancelled():  # the daemon stops: not final
            delivery.cancel()
        else:
            self._ended(delivery)

    def _ended(self, delivery: Delivery) -> None:
        if not delivery.done():
            delivery.finish()
        if delivery.chain is not None:
            self._chains.ended(delivery)

    def _task(self, delivery: Delivery, work: Coroutine[Any, Any, None],
              last: bool = False) -> None:
        """The delivery goes on off the common way: in a task, whose end is its end."""
        task = self._loop().create_task(work)
        delivery.handle = task
        task.add_done_callback(lambda done: self._task_ended(delivery, done, last))

    def _task_ended(self, delivery: Delivery, task: asyncio.Task[None], last: bool) -> None:
        """A bug must not wedge a partition: what raised is dead-lettered as `internal`
        (and if that raises too, the delivery ends there, said in the log)."""
        if task.cancelled():  # (the delivery was cancelled: revoked, or the shutdown)
            return
        exc = task.exception()
        job = delivery.job
        if exc is not None and not last:
            log.error("internal error in a delivery; dead-lettered", hook=job.hook_id,
                      event_id=job.event.id, exc_info=exc)
            return self._task(delivery, self._endings.fail(
                job, failure(ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}")), last=True)
        if exc is not None:
            log.error("internal error in a delivery, and its dead letter failed: given up",
                      hook=job.hook_id, event_id=job.event.id, exc_info=exc)
        delivery.handle = None
        self._ended(delivery)

    def in_flight(self, topic: str, partition: int) -> int:
        """Deliveries (and dead letters) of that partition's records not final yet."""
        return self._work_of.of(topic, partition)

    async def abandon(self, partitions: Iterable[tuple[str, int]], timeout: float = 5.0) -> int:
        """A revocation: see InFlight.abandon."""
        return await self._work_of.abandon(partitions, timeout)

    async def drain(self, timeout: float) -> int:
        """Wait up to `timeout` for in-flight work; cancel the rest. Returns the records
        left unfinished."""
        if self.parking is not None:
            self.parking.write_gathered()  # now, not after the linger
        left = await self._work_of.finish(timeout)
        if self.parking is not None:
            await self.parking.stop_gathering()
        return left

    def reset_disabled(self) -> None:
        self.disabled.clear()
