"""Dead-letter records (SPEC §3) and where they go."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from hookd.retries import ErrorKind


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Source:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class DeadLetter:
    """One final failure: a delivery that will not be attempted again, or a bad record."""

    hook: str | None
    event_id: str | None
    event: str | None
    payload: Mapping[str, Any] | None
    raw: bytes | None
    kind: ErrorKind
    status: int | None
    message: str
    attempts: int
    first_attempt_at: float | None
    last_attempt_at: float | None
    source: Source
    key: bytes | None = None

    def to_json(self) -> bytes:
        return orjson.dumps({
            "hook": self.hook,
            "event_id": self.event_id,
            "event": self.event,
            "payload": self.payload,
            "raw": base64.b64encode(self.raw).decode() if self.raw is not None else None,
            "error": {"kind": str(self.kind), "status": self.status, "message": self.message},
            "attempts": self.attempts,
            "first_attempt_at": rfc3339(self.first_attempt_at) if self.first_attempt_at else None,
            "last_attempt_at": rfc3339(self.last_attempt_at) if self.last_attempt_at else None,
            "source": {"topic": self.source.topic, "partition": self.source.partition,
                       "offset": self.source.offset},
        }, default=str)


class DeadLetterSink(Protocol):
    """Publishes a dead letter and returns only once it is durable (the broker's ack)."""

    async def publish(self, letter: DeadLetter) -> None: ...


class KafkaDeadLetters:
    """The dead-letter topic, written with acks=all through the daemon's producer."""

    def __init__(self, producer: Any, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def publish(self, letter: DeadLetter) -> None:
        headers = [("hookd-error-kind", str(letter.kind).encode())]
        if letter.hook:
            headers.append(("hookd-hook", letter.hook.encode()))
        await self.producer.send_and_wait(self.topic, letter.to_json(), key=letter.key,
                                          headers=headers)
