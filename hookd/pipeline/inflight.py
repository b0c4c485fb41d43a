"""The records in flight and the work each caused: run it, say when a record is done, give
up a revoked partition's work, wait for all of it at shutdown.

Each task is kept once, under its record's partition: what a revocation abandons is found
there, and everything in flight is the union of them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

import structlog

from hookd.loops import RunningLoop
from hookd.pipeline.deliveries import CANCELLED, Delivery

log = structlog.get_logger("hookd.dispatch")
Done = Callable[[], None]
# a task to run, a parking to await, or a delivery (which tells its end itself)
Work = Coroutine[Any, Any, None] | asyncio.Future[Any] | Delivery
Held = asyncio.Future[Any] | Delivery  # what is in flight: a task, a parking or a delivery
Partition = tuple[str, int]


class InFlight:
    def __init__(self) -> None:
        self.records = 0  # records not final yet (for backpressure)
        self._by_partition: dict[Partition, set[Held]] = {}
        self._loop = RunningLoop()

    def run(self, record: Any, done: Done, work: Sequence[Work]) -> None:
        """Run a record's work; `done()` when all of it finished (not when some was
        cancelled: then the record stays unfinished and is redelivered)."""
        self.records += 1
        left, whole = len(work), True
        tp = (record.topic, record.partition)
        mine = self._by_partition.get(tp)
        if mine is None:
            mine = self._by_partition[tp] = set()

        def finished(task: Held) -> None:
            nonlocal left, whole
            mine.discard(task)
            if whole:  # (a delivery's state read: its cancelled() is a Python call)
                whole = task.state != CANCELLED if isinstance(task, Delivery) else (
                    not task.cancelled())
            left -= 1
            if left == 0:
                self.records -= 1
                if whole:
                    done()

        loop = None
        for item in work:
            if isinstance(item, Delivery):  # tells `finished` itself, without the loop
                mine.add(item)
                if item.state:  # (not started yet, so never: said for safety)
                    finished(item)
                else:
                    item.ends = finished
                continue
            if isinstance(item, asyncio.Future):
                task = item
            else:
                loop = loop or self._loop()
                task = loop.create_task(item)
            mine.add(task)
            task.add_done_callback(finished)

    def of(self, topic: str, partition: int) -> int:
        """Deliveries (and dead letters) of that partition's records not final yet."""
        return len(self._by_partition.get((topic, partition), ()))

    def tasks(self) -> set[Held]:
        return {task for tasks in self._by_partition.values() for task in tasks}

    async def abandon(self, partitions: Iterable[Partition], timeout: float = 5.0) -> int:
        """Give up the work of these partitions' records (they were revoked): cancel their
        deliveries, wait until they have ended (at most `timeout`), and return how many
        were cancelled. Their records stay unfinished, uncommitted, and are delivered
        again by the partitions' next owner; nothing of them is sent after this returns,
        so the next owner never delivers a key's later event before this process's
        earlier one. A parking already under way (a future, shared with the other
        deliveries gathered with it) is left to finish: it is quick and sends nothing."""
        work = [task for tp in partitions for task in self._by_partition.pop(tp, ())]
        cancelled = 0
        for task in work:
            if isinstance(task, Delivery):
                if not task.follows and task.cancel():
                    cancelled += 1
            elif isinstance(task, asyncio.Task) and task.cancel():
                cancelled += 1
        stopping = [task.settled if isinstance(task, Delivery) else task for task in work]
        if stopping:
            _, late = await asyncio.wait(stopping, timeout=timeout)
            if late:
                log.error("revoked partitions' work did not end when cancelled",
                          deliveries=len(late))
        return cancelled

    async def finish(self, timeout: float) -> int:
        """Wait up to `timeout` for all the work; cancel the rest. Returns the records left
        unfinished."""
        if tasks := self.tasks():
            await asyncio.wait([task.ended if isinstance(task, Delivery) else task
                                for task in tasks], timeout=timeout)
        left = self.records
        tasks = self.tasks()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*(task.settled if isinstance(task, Delivery) else task
                                   for task in tasks), return_exceptions=True)
        return left
