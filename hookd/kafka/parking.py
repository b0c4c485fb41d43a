"""Durable retries: deliveries parked in Kafka retry topics, one topic per delay tier.

A delivery whose next delay is longer than `delivery.retry.inline_max` is written to
`{retry_topic_prefix}.{tier}` (e.g. `hookd.retry.5m`) with its due time, and its source
offset may then be committed. Deliveries parked unsent, because their endpoint's circuit
is open or it stopped answering, are gathered per (tier, hook) for a couple of
milliseconds and written as one record: an outage parks every delivery to the endpoint,
and a record (and a log line) for each cost more than the healthy deliveries beside it.

Within one tier every record waits about the same delay, so due times grow along a
partition: the retry consumer pauses a partition until its head is due, and never holds
more than what is due in memory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import orjson
import structlog

from hookd.config.durations import format_duration
from hookd.delivery.attempts import Job
from hookd.delivery.retries import Outcome
from hookd.events.decode import Event, Meta
from hookd.events.trace import checked_trace
from hookd.kafka import topics
from hookd.kafka.gathering import DUE_HEADER, FORMAT_GROUP, Group
from hookd.kafka.writes import Unwritable, WriteWatch
from hookd.loops import RunningLoop
from hookd.telemetry.redact import Redactor

log = structlog.get_logger("hookd.kafka.parking")
FORMAT = 1  # a record holds one delivery (FORMAT_GROUP: a group, hookd.kafka.gathering)
GROUP_BYTES = 256 * 1024  # a group's record is closed at about this size


def entry_of(event: Event, key: bytes | None, attempts: int,
             first_attempt_at: float | None) -> dict[str, Any]:
    """A delivery's own part of its retry record (a group's shares hook, due time, error),
    for orjson (meta as as_dict(): Meta itself costs orjson more, an AttributeError)."""
    entry: dict[str, Any] = {
        "event": event.name, "event_id": event.id, "payload": event.payload,
        "meta": event.meta.as_dict(),
        "key": binascii.b2a_base64(key, newline=False).decode() if key is not None else None,
        "attempts": attempts, "first_attempt_at": first_attempt_at,
    }
    trace = event.trace  # (a CloudEvent's is not in meta's headers: kept here)
    if trace is not None:
        entry["trace"] = [trace.traceparent, trace.tracestate]
    return entry


def error_of(outcome: Outcome, redactor: Redactor) -> dict[str, Any]:
    """The last attempt's error as a retry record holds it (its message masked)."""
    return {"kind": str(outcome.kind), "status": outcome.status,
            "message": redactor(outcome.message)}


# Not frozen, as Event is not (hookd.events.decode): a frozen dataclass's __init__ calls
# object.__setattr__ per field (one per delivery read back); Final fields, for mypy.
@dataclass(slots=True, unsafe_hash=True)
class Parked:
    """One delivery waiting in a retry topic."""

    hook: Final[str]
    event: Final[Event]
    key: Final[bytes | None]
    attempts: Final[int]  # made so far
    first_attempt_at: Final[float | None]
    due_at: Final[float]
    error: Final[Mapping[str, Any]] = field(default_factory=dict)  # the last attempt's error

    def entry(self) -> dict[str, Any]:
        """What is this delivery's own (a group's record shares hook, due time, error)."""
        return entry_of(self.event, self.key, self.attempts, self.first_attempt_at)

    def to_json(self) -> bytes:
        return orjson.dumps({"v": FORMAT, "hook": self.hook, **self.entry(),
                             "due_at": self.due_at, "error": dict(self.error)}, default=str)

    @classmethod
    def of(cls, hook: str, doc: Mapping[str, Any], due_at: float,
           error: Mapping[str, Any]) -> Parked:
        m = doc["meta"]
        meta = Meta(str(m["topic"]), int(m["partition"]), int(m["offset"]), m.get("key"),
                    m.get("timestamp"), dict(m.get("headers") or {}))
        key = base64.b64decode(doc["key"]) if doc.get("key") is not None else None
        trace = doc.get("trace")  # [traceparent, tracestate], checked again as it is read
        event = Event(str(doc["event"]), str(doc["event_id"]), doc["payload"], meta,
                      checked_trace(trace[0], trace[1]) if trace else None)
        return cls(hook, event, key, int(doc["attempts"]), doc.get("first_attempt_at"),
                   due_at, error)


def read_parked(value: bytes | None) -> list[Parked]:
    """The deliveries of a retry-topic record: one, or a group. ValueError (or KeyError,
    TypeError) when the record is not one hookd wrote."""
    doc = orjson.loads(value or b"")
    if not isinstance(doc, dict) or doc.get("v") not in (FORMAT, FORMAT_GROUP):
        raise ValueError("not a hookd parked delivery")
    hook, due_at, error = str(doc["hook"]), float(doc["due_at"]), doc.get("error") or {}
    if doc["v"] == FORMAT:
        return [Parked.of(hook, doc, due_at, error)]
    return [Parked.of(hook, entry, due_at, error) for entry in doc["parked"]]



def due_of(record: Any) -> float | None:
    """When a retry-topic record is due (epoch seconds); None when it says nothing
    readable (such a record is taken at once, and dead-lettered if it is not hookd's).
    The header is enough; records parked before it existed are read whole."""
    for name, value in record.headers or ():
        if name == DUE_HEADER:
            try:
                return float(value)
            except ValueError:
                return None
    try:
        return float(orjson.loads(record.value)["due_at"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def tier_topic(prefix: str, delay: float) -> str:
    return f"{prefix}.{format_duration(delay)}"


def pick_tier(tiers: list[float], delay: float) -> float:
    """The longest tier not longer than `delay` (the shortest if all are longer), so a
    record never waits behind one parked for much longer than itself."""
    return tiers[_tier_at(tiers, delay)]


def _tier_at(tiers: list[float], delay: float) -> int:
    at = bisect.bisect_right(tiers, delay + 1e-9)
    return at - 1 if at else 0


@dataclass(frozen=True, slots=True)
class ParkedRecord:
    """One parked delivery as the record that holds it."""

    topic: str
    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]]


class TooLargeToPark(Unwritable):
    """The delivery cannot be written to a retry topic (too big, or not serializable)."""


class ParkingLot:
    """Writes parked deliveries (acks=all) and creates the tier topics. `writes`: where
    writes that keep failing are told (readiness), None: nowhere."""

    def __init__(self, producer: Any, admin: Any, prefix: str, partitions: int,
                 replication: int = 3, max_bytes: int = 1 << 20, linger: float = 0.002,
                 writes: WriteWatch | None = None) -> None:
        self.producer, self.admin, self.max_bytes, self.writes = producer, admin, max_bytes, writes
        self.prefix, self.partitions, self.replication = prefix, partitions, replication
        self.linger = linger
        self.group_bytes = min(GROUP_BYTES, max_bytes // 2)
        self.tiers: list[float] = []
        self._names: list[str] = []  # the topic of each tier (a parked delivery's lookup)
        self._created: set[str] = set()
        self._groups: dict[tuple[str, str], Group] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._writing: set[asyncio.Task[None]] = set()
        self._loop = RunningLoop()

    @property
    def topics(self) -> list[str]:
        """Every tier topic known: this config's and those earlier configs left behind."""
        return sorted(self._created)

    async def ensure_tiers(self, tiers: Iterable[float]) -> bool:
        """Create missing tier topics (idempotent) and find older ones still holding
        parked records; True when the set of topics to consume changed."""
        before = set(self._created)
        if self.admin is not None and not self._created:
            try:
                pattern = re.compile(rf"^{re.escape(self.prefix)}\..+")
                self._created.update(t for t in await self.admin.list_topics()
                                     if pattern.match(t))
            except Exception as exc:  # listing is a convenience; creation below matters
                log.warning("could not list topics", error=str(exc))
        wanted = sorted(set(tiers))
        names = [tier_topic(self.prefix, t) for t in wanted]
        missing = [n for n in names if n not in self._created]
        if missing and self.admin is not None:  # one that exists already is fine
            delays = dict(zip(names, wanted, strict=True))
            configs = {n: topics.retry_topic_configs(delays[n]) for n in missing}
            topics.report(await topics.create_topics(self.admin, missing, self.partitions,
                                                     self.replication, configs),
                          "retry", self.partitions, self.replication, configs)
        self._created.update(names)
        self.tiers, self._names = wanted, names
        return self._created != before

    def topic_for(self, delay: float) -> str:
        if not self.tiers:
            raise RuntimeError("ParkingLot.ensure_tiers() first")
        return self._names[_tier_at(self.tiers, delay)]  # the topic of pick_tier()

    def clamped(self, delay: float) -> float:
        """A record holds its partition until due: never longer than its tier (a
        Retry-After of a week waits a day)."""
        return min(delay, self.tiers[-1]) if self.tiers else delay

    async def park(self, parked: Parked, delay: float) -> str:
        """Produce, wait for the broker's ack; returns the topic. Raises on failure;
        TooLargeToPark when the delivery cannot be written as a record."""
        record = self.record(parked, delay)
        await self.producer.send_and_wait(record.topic, record.value, key=record.key,
                                          headers=record.headers)
        return record.topic

    def record(self, parked: Parked, delay: float) -> ParkedRecord:
        """The record that parks `parked` for `delay` (what park() writes; `hookd replay`
        writes it inside its own transaction). TooLargeToPark when it cannot be one."""
        topic = self.topic_for(delay)
        try:
            value = parked.to_json()
        except TypeError as exc:  # nested deeper than orjson writes
            raise TooLargeToPark(f"cannot encode the event: {exc}") from None
        if len(value) > self.max_bytes * 9 // 10:
            raise TooLargeToPark(f"{len(value)} bytes, over kafka.max_request_size")
        return ParkedRecord(topic, value, parked.key, [
            ("hookd-hook", parked.hook.encode()), (DUE_HEADER, repr(parked.due_at).encode())])

    def park_unsent(self, job: Job, outcome: Outcome, delay: float,
                    redactor: Callable[[], Redactor]) -> Group | None:
        """Gather a delivery not sent (its endpoint unavailable) with the others of its hook
        and tier, written as one record after `linger` seconds (until acked; the group's
        `waiting` told then, or when given up). None when it cannot join a group (too
        large, or not serializable): park() it alone."""
        topic = self.topic_for(delay)
        try:
            entry = orjson.dumps(entry_of(job.event, job.key, job.attempts,
                                          job.first_attempt_at), default=str)
        except TypeError:  # nested deeper than orjson writes
            return None
        size = len(entry)
        if size > self.group_bytes:
            return None
        slot = (topic, job.hook_id)
        group = self._groups.get(slot)
        if group is not None and group.size + size > self.group_bytes:
            self._write(self._groups.pop(slot))
            group = None
        if group is None:
            due_at = time.time() + self.clamped(delay)  # (its due time and error: its first's)
            group = self._groups[slot] = Group(topic, job.hook_id, due_at,
                                               error_of(outcome, redactor()))
            if self._timer is None:
                self._timer = self._loop().call_later(self.linger, self.write_gathered)
        group.entries.append(entry)
        group.size += size + 1
        return group

    def write_gathered(self) -> None:
        """Start writing every group gathered so far (after `linger`; at shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        groups, self._groups = self._groups, {}
        for group in groups.values():
            self._write(group)

    async def stop_gathering(self) -> None:
        """Give up the writes still waiting for the broker (shutdown): their groups are
        told so, and their source records stay uncommitted and come again."""
        self.write_gathered()
        for task in list(self._writing):
            task.cancel()
        if self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)

    def _write(self, group: Group) -> None:
        task = self._loop().create_task(group.write(self.producer, self.writes))
        self._writing.add(task)
        task.add_done_callback(partial(self._written, group))

    def _written(self, group: Group, task: asyncio.Task[None]) -> None:
        """The write is over, however it ended (a task cancelled before it ran did not run
        its own code): its group is told here."""
        self._writing.discard(task)
        failed = None if task.cancelled() else task.exception()
        if failed is not None:  # (a bug: every failure of the broker's is tried again)
            log.error("a parked group's write failed", hook=group.hook, exc_info=failed)
        group.tell(failed is None and not task.cancelled())
