"""Whole answers, headers included, for `hookd send`: a connection that keeps each answer
it reads, given to the client as its connection factory (`HttpSender(protocol=...)`).

The daemon's connections keep only what the retry decision needs (status, Retry-After,
the first bytes of the body: `wire.Response`); keeping every header of every answer
would cost the hot path a list per response and an append per header. Here, and only
here, a subclass keeps them: the daemon's connection class, and its cost, are unchanged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import NamedTuple

from hookd.delivery.connection import Connection


class Answer(NamedTuple):
    """One answer as it came: status, headers in order (names as sent), body (up to the
    client's cap) and whether that cap cut it."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    truncated: bool


@dataclass
class Recorder:
    """The answers read through its connections, oldest first."""

    answers: list[Answer] = field(default_factory=list)

    def connection(self, loop: asyncio.AbstractEventLoop, generation: int) -> Connection:
        return RecordingConnection(loop, generation, self)

    @property
    def last(self) -> Answer | None:
        return self.answers[-1] if self.answers else None


class RecordingConnection(Connection):
    """A Connection that also keeps each answer's headers, and hands the answer to its
    Recorder when it is complete (or cut at the cap)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, generation: int,
                 recorder: Recorder) -> None:
        self.recorder = recorder
        self.kept: list[tuple[str, str]] = []
        super().__init__(loop, generation)

    def _reset(self, cap: int) -> None:
        super()._reset(cap)
        self.kept = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.kept.append((name.decode("latin-1"), value.decode("latin-1")))
        super().on_header(name, value)

    def on_message_complete(self) -> None:
        if not self._headers_done:  # an interim (1xx) answer: its headers are not the answer's
            self.kept = []
        super().on_message_complete()

    def _finish(self, truncated: bool) -> None:
        if self._waiter is not None:  # (a request is waiting: its answer, told once)
            self.recorder.answers.append(Answer(self._status, tuple(self.kept),
                                                bytes(self._body), truncated))
        super()._finish(truncated)
