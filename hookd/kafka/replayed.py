"""The replay ledger: which dead letters `hookd replay` has moved back for delivery.

A dead letter is named by where it lies: its dead-letter partition and offset (a letter
that fails again after a replay is a new letter, at a new offset, and may be replayed
again). For each letter it moves, a replay writes, in ONE Kafka transaction, the parked
delivery (a retry-tier record with the header `hookd-replay-of`) and a marker in the
ledger topic `<dead_letter_topic>.replayed`; so a letter's marker exists exactly when its
delivery was parked, whatever moment the replay was killed at. A replay reads the whole
ledger (read committed) before it moves anything, and skips a letter the ledger holds.

The marker also keeps the letter's hook and event id: a letter is taken as moved only when
they match, so a dead-letter topic deleted and made anew (its offsets starting over) does
not hide its new letters behind the old topic's markers.

Why not the replay consumer group's committed offsets (hookd before the ledger; what
those groups committed still counts as moved, see earlier_replays): an offset says "all
before here", but a replay by selection leaves the letters it did not select for a later,
different one; and the park and the commit were two writes, so a kill between them moved a
letter twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka.errors import KafkaError

from hookd.config import KafkaConfig
from hookd.kafka import topics

REPLAY_OF_HEADER = "hookd-replay-of"  # on a replayed delivery: `<dlq>/<partition>/<offset>`
LEDGER_SUFFIX = ".replayed"


def ledger_topic(dead_letter_topic: str) -> str:
    return dead_letter_topic + LEDGER_SUFFIX


@dataclass(frozen=True, slots=True)
class Moved:
    """One dead letter moved back for delivery."""

    partition: int  # of the dead-letter topic
    offset: int
    hook: str
    event_id: str

    def replay_of(self, dead_letter_topic: str) -> bytes:
        """The `hookd-replay-of` header of its parked delivery."""
        return f"{dead_letter_topic}/{self.partition}/{self.offset}".encode()

    def marker(self, retry_topic: str, at: float) -> tuple[bytes, bytes]:
        """The ledger record (key, value) saying it moved, into `retry_topic`, at `at`."""
        return (f"{self.partition}/{self.offset}".encode(),
                orjson.dumps({"partition": self.partition, "offset": self.offset,
                              "hook": self.hook, "event_id": self.event_id,
                              "retry_topic": retry_topic, "replayed_at": at}))


def read_marker(value: bytes | None) -> Moved | None:
    """The letter a ledger record names; None when the record is not one hookd wrote."""
    try:
        doc = orjson.loads(value or b"")
        return Moved(int(doc["partition"]), int(doc["offset"]), str(doc["hook"]),
                     str(doc["event_id"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


Marks = Mapping[str | None, Mapping[int, int]]  # hook (None: every hook): partition: offset


class Ledger:
    """The letters moved so far, as read from the ledger topic; and those the replays of
    hookd before the ledger moved (`earlier`: see earlier_replays)."""

    def __init__(self, earlier: Marks | None = None) -> None:
        self._moved: dict[tuple[int, int], tuple[str, str]] = {}
        self.earlier: Marks = earlier or {}

    def __len__(self) -> int:
        return len(self._moved)

    def add(self, moved: Moved) -> None:
        self._moved[moved.partition, moved.offset] = (moved.hook, moved.event_id)

    def holds(self, moved: Moved) -> bool:
        if self._moved.get((moved.partition, moved.offset)) == (moved.hook, moved.event_id):
            return True
        return any(moved.offset < self.earlier.get(hook, {}).get(moved.partition, 0)
                   for hook in (None, moved.hook))


async def earlier_replays(admin: Any, group_id: str, dead_letter_topic: str) -> Marks:
    """How far the replays of hookd before the ledger got: the offsets their consumer
    groups committed on the dead-letter topic (`<group_id>.replay`: every hook's letters
    before it were moved; `<group_id>.replay.<hook>`: that hook's). Empty when there are
    none (Kafka drops an empty group's offsets after offsets.retention.minutes, a week by
    default) or they cannot be read (no DESCRIBE on the groups)."""
    prefix = f"{group_id}.replay"
    try:
        groups = [str(g[0]) for g in await admin.list_consumer_groups()]
    except KafkaError:
        return {}
    marks: dict[str | None, dict[int, int]] = {}
    for group in groups:
        if group != prefix and not group.startswith(prefix + "."):
            continue
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        except KafkaError:
            continue
        found = {tp.partition: int(at.offset) for tp, at in offsets.items()
                 if tp.topic == dead_letter_topic and at.offset >= 0}
        if found:
            marks[None if group == prefix else group[len(prefix) + 1:]] = found
    return marks


async def ensure_ledger(admin: Any, kafka: KafkaConfig) -> tuple[str, str | None]:
    """The ledger topic, created if missing, keeping its markers as long as the
    dead-letter topic keeps its letters (its retention.ms, as the cluster reports it;
    a marker deleted before its letter would let the letter move again); and, for a
    ledger that exists, why it could drop a marker first (None: it cannot, or the broker
    does not say). Raises RuntimeError, saying what to create, when it is missing and
    cannot be created."""
    name, dlq = ledger_topic(kafka.dead_letter_topic), kafka.dead_letter_topic
    exists = name in set(await admin.list_topics())
    try:  # a broker without DescribeConfigs (tansu): unknown, kept for ever then
        found = await topics.topic_configs(admin, [dlq, name] if exists else [dlq])
    except KafkaError:
        found = {}
    if exists:
        return name, shorter_lived(found.get(name, {}), found.get(dlq, {}), name, dlq)
    configs = {name: _ledger_configs(found.get(dlq, {}))}
    creation = await topics.create_topics(admin, [name], kafka.retry_partitions,
                                          kafka.retry_replication, configs)
    if creation.refused:
        how = topics.how_to_create(creation.refused, kafka.retry_partitions,
                                   kafka.retry_replication, configs)
        raise RuntimeError(f"cannot create the replay ledger {name} "
                           f"({creation.refused[name]}); create it: {how[0]}")
    return name, None


def shorter_lived(ledger: Mapping[str, str], dead_letters: Mapping[str, str], name: str,
                  dlq: str) -> str | None:
    """Why the ledger (its configs) may delete a marker before the dead-letter topic
    deletes its letter, or None."""
    if "compact" in ledger.get("cleanup.policy", "delete"):
        return f"{name} is compacted (cleanup.policy={ledger['cleanup.policy']})"
    keep, letters = (int(c.get("retention.ms", "-1") or -1) for c in (ledger, dead_letters))
    if keep >= 0 and (letters < 0 or keep < letters):
        return (f"{name} keeps markers {keep} ms, {dlq} keeps letters "
                f"{'for ever' if letters < 0 else f'{letters} ms'}: a letter whose marker "
                f"is deleted first can be moved again; set its retention.ms to {letters}")
    return None


def _ledger_configs(dead_letters: Mapping[str, str]) -> dict[str, str]:
    """Deleted, never compacted, after the dead-letter topic's retention.ms (-1 when it
    is unknown: a marker is about 150 bytes)."""
    return {"cleanup.policy": "delete", "retention.ms": dead_letters.get("retention.ms", "-1")}
