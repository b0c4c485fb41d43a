"""Bounded slices of the event loop's time: at most `size` deliveries start (render, sign,
send) per iteration of the loop; the others wait for a later one.

A fetch of 200 records matched by three hooks makes 600 deliveries at once. Started
together, their rendering ran in one iteration: the loop read no answer (neither the
endpoints' nor the broker's next fetch) until the last was rendered, ~20 to 40 ms on a slow
core, and every answer waiting meanwhile counted as latency. In slices, the loop polls
for I/O between each `size` deliveries, so the answers of the first slice come back
while the next slice is rendered. First come, first served: a delivery that waits for its
turn keeps its place, and the order per key (kept by the dispatcher's chains) holds.
"""

from __future__ import annotations

import asyncio
from collections import deque

from hookd.loops import RunningLoop

SLICE = 50  # deliveries per iteration: 2 to 5 ms of CPU at 40 to 100 µs each


class Slices:
    __slots__ = ("left", "loop", "scheduled", "size", "waiters")

    def __init__(self, size: int = SLICE, loop: RunningLoop | None = None) -> None:
        self.size = size
        self.left = size  # turns left in this iteration
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.loop = loop or RunningLoop()
        self.scheduled = False  # a refill is due in the next iteration

    def turn(self) -> asyncio.Future[None] | None:
        """None: go now. Else a future to await: set in a later iteration, in turn."""
        if not self.scheduled:
            self.scheduled = True
            self.loop().call_soon(self._refill)
        if self.left > 0 and not self.waiters:
            self.left -= 1
            return None
        waiter: asyncio.Future[None] = self.loop().create_future()
        self.waiters.append(waiter)
        return waiter

    def _refill(self) -> None:
        """A new iteration: a new slice, given first to those waiting."""
        self.scheduled = False
        left, waiters = self.size, self.waiters
        while waiters and left > 0:
            waiter = waiters.popleft()
            if not waiter.done():  # (cancelled: a revoked partition's, or at shutdown)
                waiter.set_result(None)
                left -= 1
        self.left = left
        if left < self.size:  # some of this slice is taken: refill again next time
            self.scheduled = True
            self.loop().call_soon(self._refill)
