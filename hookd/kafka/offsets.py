"""Which offsets may be committed: the contiguous prefix of finished events, per partition."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from aiokafka import TopicPartition


@dataclass(eq=False)
class _Partition:
    order: deque[int] = field(default_factory=deque)  # offsets handed out, ascending
    pending: set[int] = field(default_factory=set)  # of those, not finished yet
    next_commit: int | None = None  # offset to commit (last finished + 1)
    committed: int | None = None  # what was last sent to the broker
    last: int | None = None  # the highest offset ever started (order may be empty)


@dataclass(frozen=True, slots=True)
class Ticket:
    """One event's place in its partition; stale once the partition is revoked."""

    tp: TopicPartition
    offset: int
    part: _Partition


class OffsetTracker:
    """At least once: an offset is committable only when it and every earlier offset of its
    partition are final. Amortised O(1) per event; memory bounded by what is in flight."""

    def __init__(self) -> None:
        self._parts: dict[TopicPartition, _Partition] = {}

    def start(self, tp: TopicPartition, offset: int) -> Ticket:
        part = self._parts.setdefault(tp, _Partition())
        if part.last is not None and offset <= part.last:
            raise ValueError(f"{tp}: offset {offset} not after {part.last}")
        part.last = offset
        part.order.append(offset)
        part.pending.add(offset)
        return Ticket(tp, offset, part)

    def finish(self, ticket: Ticket) -> None:
        part, offset = ticket.part, ticket.offset
        if self._parts.get(ticket.tp) is not part or offset not in part.pending:
            return  # the partition was revoked meanwhile: its new owner redelivers
        part.pending.discard(offset)
        while part.order and part.order[0] not in part.pending:
            part.next_commit = part.order.popleft() + 1

    def committable(self) -> dict[TopicPartition, int]:
        """Offsets that moved since the last `mark_committed`."""
        return {tp: p.next_commit for tp, p in self._parts.items()
                if p.next_commit is not None and p.next_commit != p.committed}

    def mark_committed(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            if tp in self._parts:
                self._parts[tp].committed = offset

    def in_flight(self, tp: TopicPartition | None = None) -> int:
        if tp is not None:
            return len(self._parts[tp].pending) if tp in self._parts else 0
        return sum(len(p.pending) for p in self._parts.values())

    def forget(self, tps: set[TopicPartition] | list[TopicPartition]) -> None:
        """Drop revoked partitions; late finishes for them are ignored."""
        for tp in tps:
            self._parts.pop(tp, None)

    def partitions(self) -> list[TopicPartition]:
        return list(self._parts)
