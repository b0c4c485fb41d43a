"""In-flight slots: a first-come-first-served counting semaphore that can be taken
without suspending (the hot path: a free slot costs no await), and can turn its whole
queue away at once (a stalled endpoint)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from hookd.loops import RunningLoop


class Ticket(Protocol):
    """A waiter that is not a future (a delivery under way without a task of its own)."""

    def grant(self) -> bool:
        """Handed a slot: True if it took it, False if it no longer wants one."""
        ...

    def refuse(self, exc: BaseException) -> None: ...

    @property
    def waiting(self) -> bool: ...


class Stalled(Exception):
    """The endpoint has a full queue and has not answered for a while."""


class Slots:
    """A counting semaphore, first come first served, that can be taken synchronously."""

    __slots__ = ("free", "loop", "waiters")

    def __init__(self, count: int, loop: RunningLoop | None = None) -> None:
        self.free = count
        self.waiters: deque[asyncio.Future[None] | Ticket] = deque()
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

    def wait(self, ticket: Ticket) -> None:
        """Queue `ticket` (after `try_take` said no): `ticket.grant()` when its turn comes."""
        self.waiters.append(ticket)

    def give(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if isinstance(waiter, asyncio.Future):
                if not waiter.done():
                    waiter.set_result(None)
                    return
            elif waiter.grant():
                return
        self.free += 1

    def fail_waiters(self, exc: BaseException) -> None:
        waiters, self.waiters = self.waiters, deque()
        for waiter in waiters:
            if isinstance(waiter, asyncio.Future):
                if not waiter.done():
                    waiter.set_exception(exc)
            elif waiter.waiting:
                waiter.refuse(exc)

    def waiting(self) -> bool:
        return any(not w.done() if isinstance(w, asyncio.Future) else w.waiting
                   for w in self.waiters)
