"""A group of deliveries parked unsent (their endpoint unavailable): those of one hook for
one tier, gathered for a couple of milliseconds and written as one retry record
(hookd.kafka.parking.ParkingLot.park_unsent).

What waits for the group's ack is told in one loop, once the write is over: a list of
callbacks per group, not a future's done-callbacks per delivery (each of those is
scheduled on the loop on its own, and an outage parks every delivery to the endpoint).
A task that must await the ack asks for `acked()`, a future made for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import structlog

from hookd.kafka.writes import WriteWatch, until_acked

log = structlog.get_logger("hookd.kafka.parking")
FORMAT_GROUP = 2  # a record holds deliveries of one hook parked unsent together
DUE_HEADER = "hookd-due"  # (of every retry record) epoch seconds: read without parsing it
# told once the group's write is over: True, acked; False, given up (the daemon stops)
Told = Callable[[bool], None]


class Group:
    """Deliveries of one hook parked unsent into one tier, written as one record. Its
    due time and error are its first delivery's."""

    __slots__ = ("due_at", "entries", "error", "hook", "size", "topic", "waiting")

    def __init__(self, topic: str, hook: str, due_at: float,
                 error: Mapping[str, Any]) -> None:
        self.topic, self.hook, self.due_at, self.error = topic, hook, due_at, error
        self.entries: list[bytes] = []  # each delivery's own part of the record, as JSON
        self.size = 0  # of the entries, joined
        self.waiting: list[Told] = []  # told in order (a count before the deliveries)

    def value(self) -> bytes:
        head = orjson.dumps({"v": FORMAT_GROUP, "hook": self.hook, "due_at": self.due_at,
                             "error": dict(self.error)}, default=str)
        return head[:-1] + b',"parked":[' + b",".join(self.entries) + b"]}"

    async def write(self, producer: Any, writes: WriteWatch | None) -> None:
        """Its record, tried until acked, and its one log line. (Its waiting are told by
        whoever runs this, when it is over, however it ends: ParkingLot._written.)"""
        value, key = self.value(), self.hook.encode()
        headers = [("hookd-hook", key), (DUE_HEADER, repr(self.due_at).encode()),
                   ("hookd-deliveries", str(len(self.entries)).encode())]
        await until_acked(lambda: producer.send_and_wait(
            self.topic, value, key=key, headers=headers), "park", self.topic, writes)
        log.info("delivery", outcome="parked", hook=self.hook, deliveries=len(self.entries),
                 retry_topic=self.topic, retry_in_s=round(max(0.0, self.due_at - time.time()), 1),
                 error_kind=self.error.get("kind"), error=self.error.get("message"))

    def acked(self) -> asyncio.Future[str]:
        """A future for a task to await: the topic once acked, cancelled if given up
        (asked for as the delivery joins it: once told, a group tells nobody again)."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def told(acked: bool) -> None:
            if future.done():
                return
            if acked:
                future.set_result(self.topic)
            else:
                future.cancel()
        self.waiting.append(told)
        return future

    def tell(self, acked: bool) -> None:
        """The write is over: each waiting is told, once (one that raises does not keep
        the next from being told)."""
        waiting, self.waiting = self.waiting, []
        for told in waiting:
            try:
                told(acked)
            except Exception:
                log.exception("a parked delivery's end failed", hook=self.hook)
