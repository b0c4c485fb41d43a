"""Whether a consumer or the producer is stuck: what keeps failing (fetch, a partition's
records, commits; writes to a retry or dead-letter topic), since when, and when that becomes
a stall that readiness, the log and systemd report.

A failure starts a streak; a success of the same kind ends it. A streak older than
`stall_after` is a stall: /readyz answers 503 with its reason, the log says so at error
level once per `stall_after`, and the state turns back to ready by itself when it ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog

log = structlog.get_logger("hookd.kafka.stalls")
PRODUCE = "produce"  # the kind of the producer's problems


@dataclass(frozen=True, slots=True)
class Problem:
    """One streak of failures of one kind (`fetch`, `commit`, a partition's records; or
    `produce`: writes to one of hookd's own topics)."""

    consumer: str  # source | retry; "producer" for `produce`
    kind: str  # fetch | records | commit | produce
    reason: str
    since: float  # epoch seconds of the streak's first failure
    partition: str | None = None  # "topic-N", for `records`
    offset: int | None = None  # the first offset that could not be read, for `records`
    topic: str | None = None  # the topic written to, for `produce`

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"consumer": self.consumer, "kind": self.kind,
                               "reason": self.reason,
                               "since": datetime.fromtimestamp(round(self.since), UTC).isoformat()}
        if self.kind == PRODUCE:  # not a consumer's: say whose it is
            del out["consumer"]
            out = {"producer": self.consumer, **out}
        if self.topic is not None:
            out["topic"] = self.topic
        if self.partition is not None:
            out["partition"] = self.partition
        if self.offset is not None:
            out["offset"] = self.offset
        return out


class StallWatch:
    """The open streaks of one consumer (or of the producer: `noun`, for its log lines).
    `changed` is called when the set of stalls changes (a stall begins or ends), so
    systemd's STATUS can follow at once."""

    def __init__(self, consumer: str, stall_after: float,
                 clock: Callable[[], float] = time.time,
                 changed: Callable[[], None] | None = None, noun: str = "consumer") -> None:
        self.consumer, self.stall_after, self.clock = consumer, stall_after, clock
        self.changed, self.noun = changed, noun
        self._open: dict[str, Problem] = {}
        self._said: dict[str, float] = {}  # key -> when its stall was last logged
        self._stalled: frozenset[str] = frozenset()

    def failed(self, key: str, kind: str, reason: str, *, partition: str | None = None,
               offset: int | None = None, topic: str | None = None) -> None:
        """Another failure: opens a streak, or keeps the open one (its reason and offset
        brought up to date, its start kept). The first failure of a streak is logged."""
        old = self._open.get(key)
        if old is None:
            self._open[key] = Problem(self.consumer, kind, reason, self.clock(), partition,
                                      offset, topic)
            log.warning(f"{self.noun} failing", consumer=self.consumer, kind=kind,
                        reason=reason, partition=partition, offset=offset, topic=topic,
                        stalled_after_s=self.stall_after)
        elif (old.reason, old.offset) != (reason, offset):
            self._open[key] = replace(old, reason=reason, offset=offset)
        self.check()

    def ok(self, key: str) -> None:
        """A success of that kind: its streak, if any, ends."""
        problem = self._open.pop(key, None)
        if problem is None:
            return
        self._said.pop(key, None)
        log.info(f"{self.noun} recovered", consumer=self.consumer, kind=problem.kind,
                 partition=problem.partition, topic=problem.topic,
                 after_s=round(self.clock() - problem.since, 1))
        self.check()

    def is_open(self, key: str) -> bool:
        return key in self._open

    def stalls(self) -> list[Problem]:
        """Streaks older than stall_after, oldest first."""
        now = self.clock()
        return sorted((p for p in self._open.values() if now - p.since >= self.stall_after),
                      key=lambda p: p.since)

    def check(self) -> None:
        """Log each stall at error level once per stall_after; tell `changed` when the set of
        stalls changed. Cheap when nothing is failing: call it on every turn of the loop."""
        if not self._open and not self._stalled:
            return
        now = self.clock()
        stalled = set()
        for key, problem in self._open.items():
            if now - problem.since < self.stall_after:
                continue
            stalled.add(key)
            if now - self._said.get(key, -1e18) >= self.stall_after:
                self._said[key] = now
                log.error(f"{self.noun} stalled", consumer=self.consumer, kind=problem.kind,
                          reason=problem.reason, partition=problem.partition,
                          offset=problem.offset, topic=problem.topic,
                          for_s=round(now - problem.since, 1))
        if frozenset(stalled) != self._stalled:
            self._stalled = frozenset(stalled)
            if self.changed is not None:
                self.changed()


def summary(problems: list[Problem]) -> str:
    """One line for systemd's STATUS and /readyz's `reason`: the oldest stall, and how many
    more there are."""
    if not problems:
        return ""
    first = problems[0]
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    if first.kind == PRODUCE:
        return f"{first.consumer}: {first.kind} to {first.topic}: {first.reason}{more}"
    where = f" ({first.partition} at offset {first.offset})" if first.partition else ""
    return f"{first.consumer} consumer: {first.kind}: {first.reason}{where}{more}"
