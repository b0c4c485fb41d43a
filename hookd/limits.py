"""In-flight caps: per endpoint, then global; a stalled endpoint's queue is turned away.

On the hot path: a free slot is taken without suspending (`try_acquire`), and an endpoint
whose queue is waiting has one stall timer, not one timeout per waiting request.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

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


class _Endpoint:
    __slots__ = ("gap", "progress", "slots", "stalled", "users", "watch")

    def __init__(self, per_endpoint: int, loop: RunningLoop) -> None:
        self.slots = Slots(per_endpoint, loop)
        self.users = 0  # waiting or in flight
        self.progress = time.monotonic()  # last answer (or first use)
        self.gap: float | None = None  # usual time between answers (moving average)
        self.stalled = False  # found stalled, and not answered since
        self.watch: asyncio.TimerHandle | None = None


class EndpointLimits:
    """Per-endpoint in-flight caps taken before the global one, so a slow endpoint queues
    behind its own cap and never holds the slots the healthy ones need. An endpoint with
    every slot taken that has not answered for `stall_after` seconds is *stalled*: requests
    waiting for it, and new ones, are parked instead of queued (see HttpSender.attempt).

    While the daemon is `crowded` (half its record budget in flight), a deep queue
    (`deep_queue` requests waiting, by default 4 x per_endpoint) is turned away sooner:
    once the endpoint has been silent, while other endpoints answered, for a tenth of
    `stall_after` or ten of its usual gaps between answers, whichever is longer. Each
    queued request holds its source record: a black hole fed by a busy topic would
    otherwise fill the record budget (backpressure: 4 x max_in_flight) within the second
    and pause the healthy hooks with it. Silence is counted against the others' answers,
    not the clock, so a pause of hookd's own (its event loop busy, the process
    descheduled) counts against no endpoint; a slow endpoint is judged by its own pace;
    and a hiccup of a busy endpoint parks nothing while the budget is not at risk."""

    def __init__(self, per_endpoint: int, total: int, stall_after: float = 1.0,
                 deep_queue: int | None = None) -> None:
        self.per_endpoint = per_endpoint
        self.loop = RunningLoop()
        self.total = Slots(total, self.loop)
        self.stall_after = stall_after
        self.deep_queue = 4 * per_endpoint if deep_queue is None else deep_queue
        self.progress = time.monotonic()  # the last answer from any endpoint
        self.crowded: Callable[[], bool] = lambda: True  # the daemon sets its own
        self._endpoints: dict[str, _Endpoint] = {}
        self.in_flight = 0

    def stalled(self, endpoint: str) -> bool:
        """Whether the endpoint has stalled; if so, the requests waiting for it are turned
        away (they raise Stalled) as new ones will be."""
        state = self._endpoints.get(endpoint)
        if state is None or state.users < self.per_endpoint:
            return False
        if state.stalled or time.monotonic() - state.progress > self.stall_after or (
                state.users - self.per_endpoint >= self.deep_queue
                and self.progress - state.progress > self._patience(state)
                and self.crowded()):
            state.stalled = True  # until it answers: its queue does not build up again
            if state.slots.waiters:
                state.slots.fail_waiters(Stalled(endpoint))
            return True
        return False

    def _patience(self, state: _Endpoint) -> float:
        """How long a deep queue waits for its endpoint's next answer."""
        short = self.stall_after / 10
        return short if state.gap is None else max(short, 10 * state.gap)

    def try_acquire(self, endpoint: str) -> _Endpoint | None:
        """Both slots if they are free right now (no waiting); else None."""
        state = self._endpoints.get(endpoint)
        if state is None:
            state = self._endpoints[endpoint] = _Endpoint(self.per_endpoint, self.loop)
        if state.slots.try_take():
            if self.total.try_take():
                state.users += 1
                self.in_flight += 1
                return state
            state.slots.give()
        if state.users == 0:
            del self._endpoints[endpoint]
        return None

    async def acquire(self, endpoint: str) -> _Endpoint:
        """Take the endpoint's slot, then a global one; give both back with release().
        Raises Stalled when the endpoint has stalled, or stalls while this one waits."""
        if self.stalled(endpoint):
            raise Stalled(endpoint)
        state = self._endpoints.get(endpoint)
        if state is None:
            state = self._endpoints[endpoint] = _Endpoint(self.per_endpoint, self.loop)
        state.users += 1
        try:
            if not state.slots.try_take():
                self._watch(endpoint, state)
                await state.slots.take()
            if not self.total.try_take():
                try:
                    await self.total.take()
                except BaseException:
                    state.slots.give()
                    raise
        except BaseException:
            self._leave(endpoint, state)
            raise
        self.in_flight += 1
        return state

    def _watch(self, endpoint: str, state: _Endpoint) -> None:
        """One timer per endpoint with a queue, ticking every tenth of `stall_after`: turns
        the queue away once it stalls (records that wait for it may be all there is in
        flight, with the consumer paused: no new delivery would come and ask)."""
        if state.watch is None:
            state.watch = self.loop().call_later(
                self.stall_after / 10, self._check, endpoint, state)

    def _check(self, endpoint: str, state: _Endpoint) -> None:
        state.watch = None
        if state.slots.waiting() and not self.stalled(endpoint):  # stalled: turned away
            self._watch(endpoint, state)

    def release(self, endpoint: str, state: _Endpoint, answered: bool = True) -> None:
        self.in_flight -= 1
        self.total.give()
        state.slots.give()
        if answered:
            now = time.monotonic()
            gap = now - state.progress
            state.gap = gap if state.gap is None else 0.8 * state.gap + 0.2 * gap
            state.progress = self.progress = now
            state.stalled = False
        self._leave(endpoint, state)

    def _leave(self, endpoint: str, state: _Endpoint) -> None:
        state.users -= 1
        if state.users == 0:
            if state.watch is not None:
                state.watch.cancel()
                state.watch = None
            if self._endpoints.get(endpoint) is state:
                del self._endpoints[endpoint]  # idle endpoints cost nothing
