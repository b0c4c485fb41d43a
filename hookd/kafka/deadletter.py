"""Dead-letter records (SPEC §3) and where they go."""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson

from hookd.delivery.retries import ErrorKind

_SECOND: list[Any] = [None, ""]  # the last second formatted, and its text


def rfc3339(ts: float) -> str:
    """`ts` (epoch seconds) in RFC 3339, UTC, to the millisecond (cut, not rounded): what
    `datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")` writes, with Z.
    Written here because that costs ~3 µs, and the delivery log writes three per record
    on the delivery path; the text of the second is made once per second (~0.5 µs)."""
    whole = math.floor(ts)
    micros = round((ts - whole) * 1_000_000)  # as datetime rounds: to the microsecond
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    if _SECOND[0] != whole:
        _SECOND[:] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_SECOND[1]}.{micros // 1000:03d}Z"


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
    note: str | None = None  # set when raw or payload had to be cut to fit the topic

    def slimmed(self, limit: int) -> DeadLetter:
        """A copy that fits a record of about `limit` bytes: raw cut, a big payload left out.
        The note says what was cut and how big it was."""
        notes = []
        raw = self.raw
        if raw is not None and len(raw) > limit // 2:
            raw = raw[:limit // 2]
            notes.append(f"raw cut to its first {len(raw)} of {len(self.raw or b'')} bytes")
        payload = self.payload
        if payload is not None and len(_dumps(payload)) > limit // 2:
            payload = None
            notes.append("payload left out: too large for the dead-letter topic")
        return replace(self, raw=raw, payload=payload, note="; ".join(notes) or self.note)

    def to_json(self) -> bytes:
        try:
            return self._encode()
        except TypeError:  # nested deeper than orjson writes (it reads deeper than that)
            return replace(self, payload=None,
                           note="payload left out: not serializable").to_json()

    def _encode(self) -> bytes:
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
            **({"note": self.note} if self.note else {}),
        }, default=str)


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=str)
    except TypeError:
        return b""


class DeadLetterSink(Protocol):
    """Publishes a dead letter and returns only once it is durable (the broker's ack)."""

    topic: str  # where the letters go: readiness names it when writes keep failing

    async def publish(self, letter: DeadLetter) -> None: ...


class KafkaDeadLetters:
    """The dead-letter topic, written with acks=all through the daemon's producer."""

    def __init__(self, producer: Any, topic: str, max_bytes: int = 1 << 20) -> None:
        self.producer = producer
        self.topic = topic
        self.max_bytes = max_bytes

    async def publish(self, letter: DeadLetter) -> None:
        headers = [("hookd-error-kind", str(letter.kind).encode())]
        if letter.hook:
            headers.append(("hookd-hook", letter.hook.encode()))
        value = letter.to_json()
        if len(value) > self.max_bytes * 9 // 10:  # leave room for key, headers, framing
            value = letter.slimmed(self.max_bytes // 2).to_json()
        await self.producer.send_and_wait(self.topic, value, key=letter.key, headers=headers)
