"""In-flight slots: a first-come-first-served counting semaphore that can be taken
without suspending (the hot path: a free slot costs no await), and can turn its whole
queue away at once (a stalled endpoint)."""

from __future__ import annotations

import asyncio
from collections import deque

from hookd.loops import RunningLoop


class Stalled(Exception):
    """The endpoint has a full queue and has not answered for a while."""


class Slots:
    """A counting semaphore, first come first served, that can be taken synchronously."""

    __slots__ = ("free", "loop", "waiters")

    def __init__(self, count: int, loop: RunningLoop | None = None) -> None:
        self.free = count
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.loop = loop or RunningLoop()

    def try_take(self) -> bool:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        if self.try_take():
            return
        waiter: asyncio.Future[None] = self.loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.give()  # handed a slot, then cancelled: pass it on
            raise

    def give(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1

    def fail_waiters(self, exc: BaseException) -> None:
        waiters, self.waiters = self.waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc)

    def waiting(self) -> bool:
        return any(not w.done() for w in self.waiters)
