"""From a record to final deliveries: decoded, matched, fanned out to one delivery per
hook (each taken to its end by hookd.pipeline.way), and the record's work followed until
every delivery of it is final or parked (hookd.pipeline.inflight)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from hookd.delivery.attempts import Attempts, Job
from hookd.delivery.retries import ErrorKind
from hookd.delivery.sender import Sender
from hookd.errors import DecodeError
from hookd.events.decode import Event, decode_event, make_meta
from hookd.kafka.deadletter import DeadLetter, DeadLetterSink, Source
from hookd.kafka.outcomelog import OutcomeLog
from hookd.kafka.parking import ParkingLot, read_parked
from hookd.kafka.writes import WriteWatch
from hookd.loops import RunningLoop
from hookd.pipeline.afterwards import Afterwards
from hookd.pipeline.endings import Counters, Endings
from hookd.pipeline.inflight import Done, InFlight, Work
from hookd.pipeline.runtime import Runtime
from hookd.pipeline.way import Way
from hookd.requests.oauth import TokenCache
from hookd.requests.render import CompiledHook
from hookd.telemetry.hookstats import HookStats
from hookd.telemetry.lines import Lines
from hookd.telemetry.redact import Redactor

log = structlog.get_logger("hookd.dispatch")


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
    _endings: Endings = field(init=False, repr=False)  # parking and dead letters
    _way: Way = field(init=False, repr=False)  # each delivery's, from its turn to its end
    # a logger of the logging set-up in force when the dispatcher is made: the module's
    # lazy proxy would look the configuration up again for every delivery
    _lines: Lines = field(default_factory=lambda: Lines(log.bind()))

    def __post_init__(self) -> None:
        attempts = Attempts(self.sender, self.tokens, self.stats, self.timed,
                            self._lines)
        self.counters = Counters(self.stats)
        self._endings = Endings(self.dead_letters, self.redactor, self.counters, self.parking,
                                self.writes, self.outcomes)
        afterwards = Afterwards(attempts, self._endings, self.stats, self._lines, self.runtime,
                                self.redactor, self.disabled, self.parking, self.outcomes)
        self._way = Way(self.sender, attempts, self._endings, afterwards, self.disabled,
                        RunningLoop(), self.parking, self.outcomes)

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
        self._work_of.run(record, done, self._way.deliveries(event, record.key, hooks))

    def _skipping(self, record: Any, done: Done, event: Event, hooks: list[CompiledHook],
                  outcomes: OutcomeLog) -> None:
        """Some hooks disabled, the log on: the deliveries and the skipped ones' records."""
        work: list[Work] = [
            outcomes.skipped(Job(h.id, event, record.key), self.disabled[h.id])
            if h.id in self.disabled else self._way.delivery(Job(h.id, event, record.key), h)
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
            work.append(self._way.delivery(Job(p.hook, p.event, p.key, p.attempts,
                                           p.first_attempt_at), hook))
        if not work:
            return done()
        self._work_of.run(record, done, work)

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
