"""A delivery under way, as the dispatcher holds it: a small state object that tells its
record's bookkeeping of its end, with what is needed to cancel it wherever it is, and the
order per key: a key's next delivery to a hook starts when the one before it has ended.
(hookd.pipeline.way takes it from its turn to its end.)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from hookd.delivery.attempts import Job
from hookd.delivery.sender import Cancellable
from hookd.requests.render import CompiledHook, Request

Chain = tuple[str, bytes]  # (hook id, record key): deliveries that keep their order


class _Follows:
    """The delivery waits for a parking shared with others (which is not cancelled with
    it: the shutdown gives those up itself, a revocation lets them finish)."""

    def cancel(self) -> None:
        """The parking goes on."""


FOLLOWS = _Follows()


class _InBatch:
    """The delivery waits for the ack of its outcome record's batch: cancelled, it is not
    told of it (the record is written all the same: a record read again writes its
    outcomes again, the delivery log is at least once)."""

    def cancel(self) -> None:
        """Nothing to stop: the batch is shared."""


IN_BATCH = _InBatch()


PENDING, DONE, CANCELLED = 0, 1, 2  # a delivery's state: under way, ended, given up
# (PENDING is 0: on the hot path `if delivery.state` asks done() without the call)


class Delivery:
    """One delivery of one event to one hook, from its start to its end (delivered,
    parked, dead-lettered); cancelled: given up (a revoked partition, the shutdown).

    Not a future: one per delivery cost more than the rest of its bookkeeping (a C
    future's set-up asks the loop for its debug flag, its teardown checks for an
    unretrieved exception), and nothing waits for a delivery on the common way. Its
    record's bookkeeping is told of its end directly (`ends`, set by InFlight.run); what
    must wait for it (a revocation, the shutdown) asks for `ended`, a future made then."""

    __slots__ = ("_ended", "chain", "chains", "ends", "handle", "hook", "job", "loop",
                 "request", "sent_at", "started", "state", "successor")

    def __init__(self, loop: Callable[[], asyncio.AbstractEventLoop], job: Job,
                 hook: CompiledHook, chains: Chains) -> None:
        # `loop` gives the running loop, asked only off the common way (a RunningLoop).
        # (Slots, every one set here: class defaults and an instance dict cost ~2 % more
        # per delivery under callgrind, in attribute look-ups through the type.)
        self.loop, self.job, self.hook, self.chains = loop, job, hook, chains
        self.chain: Chain | None = (hook.id, job.key) if job.key is not None else None
        self.state = PENDING
        self.successor: Delivery | None = None  # the next of its chain, waiting for this one
        self.handle: Cancellable | None = None  # what it is doing: an attempt, or a task
        self.started = False  # its turn came (no earlier one of its chain in flight)
        self.request: Request | None = None
        self.sent_at = 0.0  # (monotonic) its attempt's start
        # told once, when it has ended (its record's bookkeeping); None: nobody is
        self.ends: Callable[[Delivery], None] | None = None
        self._ended: asyncio.Future[None] | None = None  # made when somebody waits

    def done(self) -> bool:
        return self.state != PENDING

    def cancelled(self) -> bool:
        return self.state == CANCELLED

    def finish(self) -> None:
        """It has ended (the dispatcher's `_ended`)."""
        self.state = DONE
        ends, self.ends = self.ends, None
        if ends is not None:
            ends(self)
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)

    def cancel(self) -> bool:
        if self.state != PENDING:
            return False
        if self.handle is not None:  # (a task stays, for `settled`)
            self.handle.cancel()
        self.state = CANCELLED
        self._tell()
        if self.started:  # the next of its chain may go, from the loop (not from within
            # the revocation that cancels it: the next may be one of its partition too)
            self.loop().call_soon(self.chains.ended, self)
        return True

    def _tell(self) -> None:
        ends, self.ends = self.ends, None
        if ends is not None:
            ends(self)
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)

    @property
    def ended(self) -> asyncio.Future[None]:
        """Done once it has ended or was cancelled."""
        if self._ended is None:
            self._ended = self.loop().create_future()
            if self.state != PENDING:
                self._ended.set_result(None)
        return self._ended

    @property
    def follows(self) -> bool:
        """It waits for a parking shared with others: a revocation lets it finish."""
        return self.handle is FOLLOWS

    @property
    def settled(self) -> asyncio.Future[Any]:
        """What to wait for to know it has stopped: its task while it has one."""
        handle = self.handle
        return handle if isinstance(handle, asyncio.Task) else self.ended


class Chains:
    """The order per key: the last delivery of each chain, each linked to its next;
    `start` is called with the next whose turn has come."""

    def __init__(self, start: Callable[[Delivery], None]) -> None:
        self.last: dict[Chain, Delivery] = {}
        self.start = start
        self._ended: deque[tuple[Delivery, Chain | None]] = deque()
        self._starting = False

    def ended(self, delivery: Delivery) -> None:
        """`delivery` has ended, or no longer holds its chain (parked with its group, or
        its outcome record still being acked): the next of its chain starts. Its `chain`
        is taken from it here, so what it held is let go once, and as it was at this call
        (a delivery let go while a chain is advancing is advanced after, in the queue).
        One at a time: a next that ends at once (parked with its group) is taken by this
        loop, not by a call within a call for each of a long chain."""
        chain, delivery.chain = delivery.chain, None
        if delivery.successor is None and not self._starting:  # nobody waits: the common
            if chain is not None:  # case, `advance` without the queue
                last = self.last.get(chain)
                if last is delivery or (last is not None and last.state):
                    del self.last[chain]
            return
        self._ended.append((delivery, chain))
        if self._starting:
            return
        self._starting = True
        try:
            while self._ended:
                after = self.advance(*self._ended.popleft())
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
        if before is None or (before.state and before.started and before.successor is None):
            return True  # (one cancelled before its turn is passed over by the one before)
        while before.successor is not None:  # (a cancelled one's place is passed over)
            before = before.successor
        before.successor = delivery
        return False

    def advance(self, delivery: Delivery, chain: Chain | None) -> Delivery | None:
        """`delivery` (of `chain`) has ended: the next of its chain whose turn it is now,
        if any."""
        after, delivery.successor = delivery.successor, None
        while after is not None and after.state:  # cancelled before its turn
            skipped, after = after, after.successor
            skipped.successor = None
        if after is None and chain is not None:
            last = self.last.get(chain)
            if last is delivery or (last is not None and last.state):
                del self.last[chain]
        return after
