"""Durable retries: deliveries parked in Kafka retry topics, one topic per delay tier.

A delivery whose next delay is longer than `delivery.retry.inline_max` is written to
`{retry_topic_prefix}.{tier}` (e.g. `hookd.retry.5m`) with its due time, and its source
offset may then be committed. Within one tier every record waits about the same delay, so
due times grow along a partition: the retry consumer pauses a partition until its head is
due, and never holds more than what is due in memory.
"""

from __future__ import annotations

import base64
import bisect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from hookd.durations import format_duration
from hookd.errors import HookdError
from hookd.events import Event, Meta
from hookd.loader import Runtime

log = structlog.get_logger("hookd.parking")
FORMAT = 1


@dataclass(frozen=True)
class Parked:
    """One delivery waiting in a retry topic."""

    hook: str
    event: Event
    key: bytes | None
    attempts: int  # made so far
    first_attempt_at: float | None
    due_at: float
    error: Mapping[str, Any] = field(default_factory=dict)  # the last attempt's error

    def to_json(self) -> bytes:
        return orjson.dumps({
            "v": FORMAT, "hook": self.hook, "event": self.event.name,
            "event_id": self.event.id, "payload": self.event.payload,
            "meta": self.event.meta.as_dict(),
            "key": base64.b64encode(self.key).decode() if self.key is not None else None,
            "attempts": self.attempts, "first_attempt_at": self.first_attempt_at,
            "due_at": self.due_at, "error": dict(self.error),
        }, default=str)

    @classmethod
    def from_json(cls, value: bytes) -> Parked:
        """ValueError (or KeyError/TypeError) when the record is not one hookd wrote."""
        doc = orjson.loads(value)
        if not isinstance(doc, dict) or doc.get("v") != FORMAT:
            raise ValueError("not a hookd parked delivery")
        m = doc["meta"]
        meta = Meta(str(m["topic"]), int(m["partition"]), int(m["offset"]), m.get("key"),
                    m.get("timestamp"), dict(m.get("headers") or {}))
        key = base64.b64decode(doc["key"]) if doc.get("key") is not None else None
        return cls(str(doc["hook"]), Event(str(doc["event"]), str(doc["event_id"]),
                                           doc["payload"], meta),
                   key, int(doc["attempts"]), doc.get("first_attempt_at"),
                   float(doc["due_at"]), doc.get("error") or {})


DUE_HEADER = "hookd-due"  # epoch seconds: read without parsing the record


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


def tiers_of(runtime: Runtime) -> list[float]:
    """The delays of every schedule in the config that are too long to wait in memory."""
    delivery = runtime.config.delivery
    delays = set(delivery.retry.schedule)
    for hook in runtime.hooks:
        delays.update(hook.schedule)
    tiers = {round(d, 3) for d in delays if d > delivery.retry.inline_max}
    # an open circuit parks whatever the schedules say: there is always a tier for it
    tiers.add(round(delivery.circuit_breaker.cooldown, 3))
    return sorted(tiers)


def pick_tier(tiers: list[float], delay: float) -> float:
    """The longest tier not longer than `delay` (the shortest if all are longer), so a
    record never waits behind one parked for much longer than itself."""
    at = bisect.bisect_right(tiers, delay + 1e-9)
    return tiers[at - 1] if at else tiers[0]


class TooLargeToPark(HookdError):
    """The delivery cannot be written to a retry topic (too big, or not serializable)."""


class ParkingLot:
    """Writes parked deliveries (acks=all) and creates the tier topics."""

    def __init__(self, producer: Any, admin: Any, prefix: str, partitions: int,
                 replication: int = 3, max_bytes: int = 1 << 20) -> None:
        self.producer, self.admin, self.max_bytes = producer, admin, max_bytes
        self.prefix, self.partitions, self.replication = prefix, partitions, replication
        self.tiers: list[float] = []
        self._created: set[str] = set()

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
        from aiokafka.admin import NewTopic
        from aiokafka.errors import TopicAlreadyExistsError

        wanted = sorted(set(tiers))
        names = [tier_topic(self.prefix, t) for t in wanted]
        missing = [n for n in names if n not in self._created]
        if missing and self.admin is not None:
            try:
                await self.admin.create_topics(
                    [NewTopic(n, self.partitions, self.replication) for n in missing])
            except TopicAlreadyExistsError:
                pass
            except Exception as exc:  # a broker that auto-creates topics still works
                log.warning("could not create retry topics", topics=missing, error=str(exc))
        self._created.update(names)
        self.tiers = wanted
        return self._created != before

    async def park(self, parked: Parked, delay: float) -> str:
        """Produce, wait for the broker's ack; returns the topic. Raises on failure;
        TooLargeToPark when the delivery cannot be written as a record."""
        if not self.tiers:
            raise RuntimeError("ParkingLot.ensure_tiers() first")
        topic = tier_topic(self.prefix, pick_tier(self.tiers, delay))
        try:
            value = parked.to_json()
        except TypeError as exc:  # nested deeper than orjson writes
            raise TooLargeToPark(f"cannot encode the event: {exc}") from None
        if len(value) > self.max_bytes * 9 // 10:
            raise TooLargeToPark(f"{len(value)} bytes, over kafka.max_request_size")
        await self.producer.send_and_wait(topic, value, key=parked.key, headers=[
            ("hookd-hook", parked.hook.encode()), (DUE_HEADER, repr(parked.due_at).encode())])
        return topic

