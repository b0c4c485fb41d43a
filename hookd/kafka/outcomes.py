"""The delivery log's record (`kafka.outcomes_topic`): one per final outcome of a delivery
and per parking, made by a pure function (`outcome_record`), and its JSON Schema
(`hookd schema outcomes`).

The fields are named as the dead-letter record's where they overlap (SPEC §3: `hook`,
`event_id`, `event`, `attempts`, `first_attempt_at`, `last_attempt_at`, `error`,
`source`). The event's payload is not in it: the log is for "did the CRM get call X?"
and delivery figures, and the payload is in the source topic (`source`) and, for a
failure, in the dead letter. The TypedDicts below are the one description of the record:
mypy checks `outcome_record` against them, and pydantic writes the schema from them.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict  # pydantic reads its fields (typing's, from 3.12)

from hookd.events.decode import Event
from hookd.kafka.deadletter import rfc3339
from hookd.requests.signing import webhook_id

Ending = Literal["delivered", "dead_lettered", "skipped", "parked"]
HOOK_DISABLED = "hook_disabled"  # error.kind of a skipped delivery


@with_config(ConfigDict(use_attribute_docstrings=True))
class SourceDoc(TypedDict):
    """The source record of the event (for a delivery back from a retry topic, the one it
    was first read from), as in a dead letter."""

    topic: str
    partition: int
    offset: int


@with_config(ConfigDict(use_attribute_docstrings=True))
class ErrorDoc(TypedDict):
    """Why the delivery is not delivered, as a dead letter's `error`."""

    kind: str
    """A dead letter's `error.kind` (`http_status`, `timeout`, `connect`, `render`,
    `blocked`, `internal`, `circuit_open`), or `hook_disabled` for a skipped delivery."""
    status: int | None
    """The last answer's HTTP status; null when there was none."""
    message: str
    """What went wrong, secrets masked."""


@with_config(ConfigDict(use_attribute_docstrings=True))
class OutcomeRecord(TypedDict):
    """One record of the delivery log; its key is the event id (UTF-8)."""

    hook: str
    """The hook's id."""
    event_id: str
    """The event's id (also the record's key)."""
    event: str
    """The event's name."""
    outcome: Ending
    """`delivered` (a 2xx answer), `dead_lettered` (written to the dead-letter topic:
    final), `skipped` (its hook was disabled by a 410 Gone until the next reload, or
    removed or disabled while the delivery was parked: not sent, not dead-lettered), or
    `parked` (written to a retry topic: another record follows when it ends)."""
    webhook_id: str
    """The `webhook-id` header the receiver sees, the same on every attempt."""
    status: int | None
    """The HTTP status of the last answer; null when there was none (a timeout, a
    refused connection, nothing sent)."""
    attempts: int
    """Attempts made so far (a parked delivery's next one is `attempts + 1`)."""
    first_attempt_at: str | None
    """RFC 3339, UTC, milliseconds; null when no attempt was made."""
    last_attempt_at: str | None
    """RFC 3339; the attempt that brought this outcome; null when none was made now
    (skipped, or parked unsent while its endpoint's circuit is open)."""
    at: str
    """RFC 3339: when hookd reached this outcome."""
    latency_ms: int | None
    """From the source record's Kafka timestamp to `at`, in milliseconds: how long the
    event took to reach its outcome, parkings and retries included (the
    `hookd_event_delivery_lag_seconds` of a delivered one). Null when the source record
    has no timestamp."""
    error: ErrorDoc | None
    """Null when delivered."""
    retry_topic: str | None
    """Where a `parked` delivery waits; null otherwise."""
    due_at: str | None
    """RFC 3339: when a `parked` delivery is tried again; null otherwise."""
    source: SourceDoc


def outcome_record(outcome: Ending, hook: str, event: Event, *, attempts: int,
                   first_attempt_at: float | None, last_attempt_at: float | None,
                   status: int | None, error: ErrorDoc | None, at: float,
                   retry_topic: str | None = None, due_at: float | None = None,
                   msg_id: str | None = None) -> OutcomeRecord:
    """The record of one outcome (times in epoch seconds); a pure function. `msg_id`: its
    webhook-id, when the caller has it (else computed: the same)."""
    meta, stamp = event.meta, event.meta.timestamp
    at_text = rfc3339(at)  # (a delivered record's last attempt is its `at`: written once)
    return {
        "hook": hook, "event_id": event.id, "event": event.name, "outcome": outcome,
        "webhook_id": msg_id or webhook_id(event.id, hook), "status": status, "attempts": attempts,
        "first_attempt_at": rfc3339(first_attempt_at) if first_attempt_at else None,
        "last_attempt_at": (at_text if last_attempt_at == at else rfc3339(last_attempt_at))
        if last_attempt_at else None,
        "at": at_text,
        "latency_ms": max(0, round(at * 1000) - stamp) if stamp is not None and stamp >= 0
        else None,
        "error": error, "retry_topic": retry_topic,
        "due_at": rfc3339(due_at) if due_at else None,
        "source": {"topic": meta.topic, "partition": meta.partition, "offset": meta.offset},
    }


def to_json(record: OutcomeRecord) -> bytes:
    return orjson.dumps(record)


def outcomes_schema() -> dict[str, Any]:
    """The record's JSON Schema, as `hookd schema outcomes` prints it."""
    schema = TypeAdapter(OutcomeRecord).json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "hookd delivery log record", **{k: v for k, v in schema.items()
                                                    if k != "title"}}
