"""Which dead letters a `hookd replay` selects: its options, parsed once, and the test of
one letter.

Times (`--since`, `--until`) are compared with the letter's `last_attempt_at` (its
record's timestamp, when it was written, for a letter never attempted); `--since` is
inclusive, `--until` exclusive, so `--since 14:00 --until 15:30` and `--since 15:30`
never select a letter twice. A time is ISO-8601 (`2026-12-07T14:00`, `…T14:00:00+01:00`,
`…Z`, a bare date `2026-12-07` meaning its midnight), UTC when it names no zone, as the
letters write theirs; or a duration back from now (`90m`, `2h`, `1d`). Statuses are exact
(`503`) or a class (`5xx`). Each option may be given several times, and kinds and
statuses also as a comma list; a letter is selected when it matches every option given,
and any one value of each.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hookd.config.durations import parse_duration
from hookd.delivery.retries import ErrorKind
from hookd.errors import SpecError

_STATUS = re.compile(r"([1-5])(?:xx|\d\d)", re.ASCII | re.IGNORECASE)


def parse_time(text: str, now: float | None = None) -> float:
    """Epoch seconds of an option's time (see the module's text); ValueError saying why."""
    value = text.strip()
    try:
        return (time.time() if now is None else now) - parse_duration(value)
    except SpecError:
        pass  # not a duration: a time
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO-8601 time (2026-12-07T14:00, UTC "
                         "unless it says its zone) nor a duration back from now (2h)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_kinds(values: Iterable[str]) -> frozenset[ErrorKind]:
    kinds = set()
    for value in _split(values):
        try:
            kinds.add(ErrorKind(value.lower()))
        except ValueError:
            raise ValueError(f"unknown error kind {value!r} (one of "
                             f"{', '.join(k.value for k in ErrorKind)})") from None
    return frozenset(kinds)


def parse_statuses(values: Iterable[str]) -> tuple[frozenset[int], frozenset[int]]:
    """(exact statuses, classes: 5 for `5xx`)."""
    exact, classes = set(), set()
    for value in _split(values):
        if not _STATUS.fullmatch(value):
            raise ValueError(f"{value!r} is not an HTTP status (100-599) nor a class (5xx)")
        if value[1:].lower() == "xx":
            classes.add(int(value[0]))
        else:
            exact.add(int(value))
    return frozenset(exact), frozenset(classes)


def _split(values: Iterable[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@dataclass(frozen=True, slots=True)
class Facts:
    """What a selection reads of one letter."""

    hook: str | None
    event_id: str | None
    kind: str | None
    status: int | None
    at: float | None  # the last attempt, else when the letter was written (epoch s)


def facts_of(letter: Mapping[str, Any], written_ms: int | None) -> Facts:
    """A letter's facts; TypeError or ValueError when it is not an object hookd wrote."""
    error = letter.get("error") or {}
    status = error.get("status")
    last = letter.get("last_attempt_at")
    at = (datetime.fromisoformat(str(last)).timestamp() if last
          else written_ms / 1000 if written_ms is not None else None)
    hook, event_id = letter.get("hook"), letter.get("event_id")
    return Facts(None if hook is None else str(hook),
                 None if event_id is None else str(event_id),
                 None if error.get("kind") is None else str(error["kind"]),
                 int(status) if isinstance(status, int) else None, at)


@dataclass(frozen=True, slots=True)
class Selection:
    """Empty fields select everything."""

    hooks: frozenset[str] = frozenset()
    kinds: frozenset[ErrorKind] = frozenset()
    statuses: frozenset[int] = frozenset()
    classes: frozenset[int] = frozenset()  # 5: 500-599
    event_ids: frozenset[str] = frozenset()
    since: float | None = None
    until: float | None = None

    def matches(self, facts: Facts) -> bool:
        if self.hooks and facts.hook not in self.hooks:
            return False
        if self.kinds and facts.kind not in self.kinds:
            return False
        if (self.statuses or self.classes) and (
                facts.status is None or (facts.status not in self.statuses
                                         and facts.status // 100 not in self.classes)):
            return False
        if self.event_ids and facts.event_id not in self.event_ids:
            return False
        if self.since is not None and (facts.at is None or facts.at < self.since):
            return False
        return self.until is None or (facts.at is not None and facts.at < self.until)

    @classmethod
    def from_args(cls, args: argparse.Namespace, now: float | None = None) -> Selection:
        """From `hookd replay`'s options; ValueError saying which option is wrong."""
        statuses, classes = parse_statuses(args.status or [])
        since = None if args.since is None else parse_time(args.since, now)
        until = None if args.until is None else parse_time(args.until, now)
        if since is not None and until is not None and since >= until:
            raise ValueError(f"--since {args.since} is not before --until {args.until}")
        return cls(frozenset(args.hook or []), parse_kinds(args.error_kind or []), statuses,
                   classes, frozenset(args.event_id or []), since, until)
