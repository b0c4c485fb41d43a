"""One endpoint (`scheme://host:port`): its circuits (the host's, and one per hook whose
answers are failing: see hookd.delivery.circuit), its in-flight slots and stall watch,
its idle connections, and one attempt through it (hookd.delivery.sending): both slots
taken with both circuits closed (`take`) → sign → send → the outcome recorded and both
slots given back (`ended`).

Per-endpoint slots are taken before the global one, so a slow endpoint queues behind its
own cap and never holds the slots the healthy ones need. An endpoint with every slot
taken that has not answered for `stall_after` seconds is *stalled*: requests waiting for
it, and new ones, are parked instead of queued.

While the daemon is `crowded` (half its record budget in flight), a deep queue
(`deep_queue` requests waiting, by default 4 x per_endpoint) is turned away sooner: once
the endpoint has been silent, while other endpoints answered, for a tenth of
`stall_after` or ten of its usual gaps between answers, whichever is longer. Each queued
request holds its source record: a black hole fed by a busy topic would otherwise fill
the record budget (backpressure: 4 x max_in_flight) within the second and pause the
healthy hooks with it. Silence is counted against the others' answers, not the clock,
so a pause of hookd's own (its event loop busy, the process descheduled) counts against
no endpoint; a slow endpoint is judged by its own pace; and a hiccup of a busy endpoint
parks nothing while the budget is not at risk.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from hookd.delivery.circuit import Circuit, CircuitPolicy, told
from hookd.delivery.client import Connections, Connector
from hookd.delivery.outcomes import circuit_open, stalled
from hookd.delivery.retries import Outcome, Verdict
from hookd.delivery.sending import Sending
from hookd.delivery.slots import Slots, Stalled, Ticket
from hookd.loops import RunningLoop
from hookd.requests.proxy import Proxy
from hookd.requests.render import Request
from hookd.requests.signing import Signer
from hookd.requests.target import Target

_DELIVERED = Verdict.DELIVERED


class Shared(Protocol):
    """What all endpoints share (hookd.delivery.endpoints.Endpoints)."""

    per_endpoint: int
    total: Slots  # the global in-flight cap
    loop: RunningLoop
    stall_after: float
    deep_queue: int
    policy: CircuitPolicy
    connector: Connector
    max_response_bytes: int
    progress: float  # the last answer from any endpoint
    crowded: Callable[[], bool]

    def forget(self, endpoint: Endpoint) -> None: ...


class Endpoint:
    __slots__ = ("circuit", "connections", "gap", "hooks", "name", "progress", "shared",
                 "silent", "slots", "users", "watch")

    def __init__(self, name: str, shared: Shared, proxy: Proxy | None = None) -> None:
        self.name, self.shared = name, shared
        self.circuit = Circuit(shared.policy)  # the host's
        self.hooks: dict[str, Circuit] = {}  # hook id -> its own, while its answers fail
        self.slots = Slots(shared.per_endpoint, shared.loop)
        self.connections = Connections(shared.connector, on_empty=self._idle, proxy=proxy)
        self.users = 0  # waiting or in flight
        self.progress = time.monotonic()  # last answer (or the start of this busy spell)
        self.gap: float | None = None  # usual time between answers (moving average)
        self.silent = False  # found stalled, and not answered since
        self.watch: asyncio.TimerHandle | None = None

    # -- one attempt ----------------------------------------------------------------------
    def unavailable(self, hook: str | None = None) -> Outcome | None:
        """PARK when the host's circuit or this hook's is open, or the endpoint has
        stalled: checked before a request is even rendered (hooks whose endpoint is known
        at load: CompiledHook.endpoint); None otherwise."""
        if self.circuit.open_until == 0.0 and (hook is None or hook not in self.hooks):
            # (both circuits closed: the common case)
            if self.users >= self.shared.per_endpoint and self.stalled():
                return stalled(self.name, self.shared.policy.cooldown)
            return None
        now = time.monotonic()
        wait = self.circuit.open_for(now)
        if wait is not None:
            return circuit_open(self.name, wait)
        own = self.hooks.get(hook) if hook is not None else None
        wait = own.open_for(now) if own is not None else None
        if wait is not None:
            return circuit_open(self.name, wait, hook)
        if self.stalled():
            return stalled(self.name, self.shared.policy.cooldown)
        return None

    async def attempt(self, target: Target, request: Request, signer: Signer | None,
                      timeout: float, tls: ssl.SSLContext | None,
                      extra_headers: Mapping[str, str] | None = None) -> Outcome:
        """One attempt (a `Sending`, as HttpSender.begin makes it), awaited: PARK when a
        circuit is open or the endpoint has stalled, nothing sent."""
        ended: asyncio.Future[Outcome] = self.shared.loop().create_future()
        sending = Sending(self, target, request, signer, timeout, tls, extra_headers,
                          ended.set_result)
        try:
            return await ended
        except asyncio.CancelledError:
            sending.cancel()
            raise

    # -- the circuits -------------------------------------------------------------------------
    def blocked(self, hook: str) -> Outcome | None:
        """None: send (both closed, or this is a half-open one's probe); else the park."""
        now = time.monotonic()
        wait = self.circuit.blocked_for(now)
        if wait is not None:
            return circuit_open(self.name, wait)
        own = self.hooks.get(hook)
        wait = own.blocked_for(now) if own is not None else None
        if wait is not None:
            self.circuit.unprobe()  # (if the host's let this one through: it was not sent)
            return circuit_open(self.name, wait, hook)
        return None

    def ended(self, hook: str, outcome: Outcome | None, answered: bool) -> None:
        """An attempt that held both slots has ended: its outcome recorded (None: nothing
        to record), then both slots back, an answer counted as progress: one call, the
        one place slots are given back. A 2xx while both circuits are closed and clean
        changes neither: nothing to record. Recorded first: a request handed the freed
        slot checks the circuits as they now are."""
        now = time.monotonic()
        # (a circuit open or half-open has failures too: `failures` alone says unclean)
        if outcome is not None and (outcome.verdict is not _DELIVERED
                                    or self.circuit.failures or hook in self.hooks):
            told(self.circuit, self.hooks, hook, outcome, now)
        shared = self.shared
        total, slots = shared.total, self.slots
        if total.waiters:  # (`give` without a call when nobody waits: the common case)
            total.give()
        else:
            total.free += 1
        if slots.waiters:
            slots.give()
        else:
            slots.free += 1
        if answered:
            gap = now - self.progress
            self.gap = gap if self.gap is None else 0.8 * self.gap + 0.2 * gap
            self.progress = shared.progress = now
            self.silent = False
        self.users -= 1
        if self.users == 0:
            self._left()

    def release(self, got_answer: bool = True) -> None:
        """Both slots back, nothing to record (cancelled, or refused at the send)."""
        self.ended("", None, got_answer)

    def record(self, hook: str, outcome: Outcome) -> None:
        """An attempt's outcome, told its circuits (hookd.delivery.circuit.told)."""
        told(self.circuit, self.hooks, hook, outcome, time.monotonic())

    # -- slots and the stall watch ------------------------------------------------------------
    def stalled(self) -> bool:
        """Whether the endpoint has stalled; if so, the requests waiting for it are turned
        away (they raise Stalled) as new ones will be."""
        shared = self.shared
        if self.users < shared.per_endpoint:
            return False
        if self.silent or time.monotonic() - self.progress > shared.stall_after or (
                self.users - shared.per_endpoint >= shared.deep_queue
                and shared.progress - self.progress > self._patience()
                and shared.crowded()):
            self.silent = True  # until it answers: its queue does not build up again
            if self.slots.waiters:
                self.slots.fail_waiters(Stalled(self.name))
            return True
        return False

    def _patience(self) -> float:
        """How long a deep queue waits for this endpoint's next answer."""
        short = self.shared.stall_after / 10
        return short if self.gap is None else max(short, 10 * self.gap)

    def enter(self) -> None:
        if self.users == 0:  # a new busy spell: judged afresh
            self.progress, self.gap, self.silent = time.monotonic(), None, False
        self.users += 1

    def take(self, hook: str | None = None) -> bool:
        """Both slots, this endpoint's and a global one, in one step: when both are free
        with nobody queued for either and, with `hook`, the host's circuit and the hook's
        are closed (asked here, as the attempt is let in: one that opened after
        `unavailable` found the endpoint available is honoured). Else False, nothing
        taken: the full way runs (Sending._start). A delivery's common case, without a call
        to Slots."""
        if hook is not None and (self.circuit.open_until != 0.0 or hook in self.hooks):
            return False
        shared = self.shared
        slots, total = self.slots, shared.total
        if slots.free <= 0 or slots.waiters or total.free <= 0 or total.waiters:
            return False
        slots.free -= 1
        total.free -= 1
        if self.users:  # (`enter`'s common case, without the call)
            self.users += 1
        else:
            self.enter()
        return True

    def line_up(self, ticket: Ticket) -> bool:
        """`ticket` counted in (`enter`): True with this endpoint's slot, if free; else
        False, queued for it (`ticket.grant()` in its turn), the stall watch on. The full
        way's first step (`take` said no), in one call."""
        if self.users:  # (`enter`'s common case, without the call)
            self.users += 1
        else:
            self.enter()
        slots = self.slots
        if slots.free > 0 and not slots.waiters:  # (`try_take`, inline)
            slots.free -= 1
            return True
        if self.watch is None:
            self.watch_queue()
        slots.waiters.append(ticket)  # (`wait`, inline)
        return False

    def try_acquire(self) -> bool:
        """`take`, for a caller that gives up when it says no: an endpoint it made is
        dropped."""
        if self.take():
            return True
        if self.users == 0:
            self.shared.forget(self)
        return False

    async def acquire(self) -> None:
        """Take this endpoint's slot, then a global one; give both back with release().
        Raises Stalled when the endpoint has stalled, or stalls while this one waits."""
        if self.stalled():
            raise Stalled(self.name)
        self.enter()
        try:
            if not self.slots.try_take():
                self.watch_queue()
                await self.slots.take()
            if not self.shared.total.try_take():
                try:
                    await self.shared.total.take()
                except BaseException:
                    self.slots.give()
                    raise
        except BaseException:
            self.leave()
            raise

    def watch_queue(self) -> None:
        """One timer per endpoint with a queue, ticking every tenth of `stall_after`: turns
        the queue away once it stalls (records that wait for it may be all there is in
        flight, with the consumer paused: no new delivery would come and ask)."""
        if self.watch is None:
            self.watch = self.shared.loop().call_later(self.shared.stall_after / 10,
                                                       self._check)

    def _check(self) -> None:
        self.watch = None
        if self.slots.waiting() and not self.stalled():  # stalled: turned away
            self.watch_queue()

    def leave(self) -> None:
        self.users -= 1
        if self.users == 0:
            self._left()

    def _left(self) -> None:
        """The last request waiting or in flight has gone."""
        if self.watch is not None:
            self.watch.cancel()
            self.watch = None
        self.shared.forget(self)

    def _idle(self) -> None:
        """The last idle connection was swept away."""
        if self.users == 0:
            self.shared.forget(self)

    @property
    def idle(self) -> bool:
        """Nothing to keep: no request, no open or failing circuit, no connection."""
        return (self.users == 0 and self.circuit.closed and not self.hooks
                and not self.connections)
