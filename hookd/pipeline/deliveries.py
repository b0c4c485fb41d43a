"""A delivery under way, as the dispatcher holds it: one future per delivery (what its
record's bookkeeping waits for), with what is needed to cancel it wherever it is, and the
order per key: a key's next delivery to a hook starts when the one before it has ended.

A delivery has no task of its own while it goes the common way (rendered, sent, answered
2xx): it is started from a callback, and ends from the connection's. A task runs it only
from the moment it leaves that way (a retry, a parking, a dead letter, an OAuth2 token, a
rate limit), and that task's end is the delivery's end.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from hookd.delivery.attempts import Job, Line
from hookd.delivery.sender import Cancellable
from hookd.requests.render import CompiledHook, Request

Chain = tuple[str, bytes]  # (hook id, record key): deliveries that keep their order


class _Follows:
    """The delivery waits for a parking shared with others (which is not cancelled with
    it: the shutdown gives those up itself, a revocation lets them finish)."""

    def cancel(self) -> None:
        """The parking goes on."""


FOLLOWS = _Follows()


class Delivery(asyncio.Future[None]):
    """One delivery of one event to one hook, from its start to its end (delivered,
    parked, dead-lettered); cancelled: given up (a revoked partition, the shutdown).

    Its record's bookkeeping is told of its end directly (`ends`, set by InFlight.run),
    not through a done-callback: a future's callbacks run from the loop, one scheduled
    handle each, and nothing else waits for a delivery on the common way."""

    # (slots: a future per delivery; the ones not set here have their class's default)
    __slots__ = ("chain", "chains", "ends", "handle", "hook", "job", "line", "request",
                 "sent_at", "started", "successor")

    def __init__(self, loop: asyncio.AbstractEventLoop, job: Job, hook: CompiledHook,
                 chains: Chains) -> None:
        super().__init__(loop=loop)
        self.job, self.hook, self.chains = job, hook, chains
        self.chain: Chain | None = (hook.id, job.key) if job.key is not None else None
        self.successor: Delivery | None = None  # the next of its chain, waiting for this one
        self.handle: Cancellable | None = None  # what it is doing: an attempt, or a task
        self.started = False  # its turn came (no earlier one of its chain in flight)
        self.request: Request | None = None
        self.line: Line | None = None
        self.sent_at = 0.0  # (monotonic) its attempt's start
        # told once, when it has ended (its record's bookkeeping); None: nobody is
        self.ends: Callable[[Delivery], None] | None = None

    def finish(self) -> None:
        """It has ended: its result is set (the dispatcher's `_ended`)."""
        self.set_result(None)
        ends, self.ends = self.ends, None
        if ends is not None:
            ends(self)

    def cancel(self, msg: Any | None = None) -> bool:
        if self.done():
            return False
        if self.handle is not None:  # (a task stays, for `settled`)
            self.handle.cancel()
        super().cancel(msg)
        ends, self.ends = self.ends, None
        if ends is not None:
            ends(self)
        if self.started:  # the next of its chain may go, from the loop (not from within
            # the revocation that cancels it: the next may be one of its partition too)
            self.get_loop().call_soon(self.chains.ended, self)
        return True

    @property
    def follows(self) -> bool:
        """It waits for a parking shared with others: a revocation lets it finish."""
        return self.handle is FOLLOWS

    @property
    def settled(self) -> asyncio.Future[Any]:
        """What to wait for to know it has stopped: its task while it has one."""
        handle = self.handle
        return handle if isinstance(handle, asyncio.Task) else self


class Chains:
    """The order per key: the last delivery of each chain, each linked to its next;
    `start` is called with the next whose turn has come."""

    def __init__(self, start: Callable[[Delivery], None]) -> None:
        self.last: dict[Chain, Delivery] = {}
        self.start = start
        self._ended: deque[Delivery] = deque()
        self._starting = False

    def ended(self, delivery: Delivery) -> None:
        """`delivery` has ended (or no longer holds its chain): the next of its chain
        starts. One at a time: a next that ends at once (parked with its group) is taken
        by this loop, not by a call within a call for each of a long chain."""
        if delivery.successor is None and not self._starting:  # nobody waits: the common
            chain = delivery.chain  # case, `advance` without the queue
            if chain is not None:
                last = self.last.get(chain)
                if last is delivery or (last is not None and last.done()):
                    del self.last[chain]
            return
        self._ended.append(delivery)
        if self._starting:
            return
        self._starting = True
        try:
            while self._ended:
                after = self.advance(self._ended.popleft())
                if after is not None:
                    self.start(after)
        finally:
            self._starting = False

    def __contains__(self, chain: Chain) -> bool:
        return chain in self.last

    def join(self, delivery: Delivery) -> bool:
        """True: its turn now; False: it waits for the one before it."""
        chain = delivery.chain
        if chain is None:
            return True
        before = self.last.get(chain)
        self.last[chain] = delivery
        if before is None or (before.done() and before.started and before.successor is None):
            return True  # (one cancelled before its turn is passed over by the one before)
        while before.successor is not None:  # (a cancelled one's place is passed over)
            before = before.successor
        before.successor = delivery
        return False

    def advance(self, delivery: Delivery) -> Delivery | None:
        """`delivery` has ended: the next of its chain whose turn it is now, if any."""
        after, delivery.successor = delivery.successor, None
        while after is not None and after.done():  # cancelled before its turn
            skipped, after = after, after.successor
            skipped.successor = None
        chain = delivery.chain
        if after is None and chain is not None:
            last = self.last.get(chain)
            if last is delivery or (last is not None and last.done()):
                del self.last[chain]
        return after
