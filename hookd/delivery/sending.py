"""One attempt through an endpoint, without a coroutine: the steps of `Endpoint.attempt`
(check the circuits → take a slot → sign → send → record the outcome → release) run from
callbacks, and `done(outcome)` is told once at the end.

Why by hand: a delivery used to be a task awaiting a slot's future, then the answer's
future, then its own completion: three wake-ups, a task and ~6 futures per request
(the bulk of what a delivery cost beyond the request itself). Here the queue for a slot
holds the attempt itself (a `Ticket`), a freed slot starts the next attempt from the
callback that freed it, and the answer calls `done` from the connection's own callback.
`Endpoint.attempt` (the awaitable form) is this with a future at the end: there is one
way to make an attempt.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from hookd.delivery.circuit import probing, unprobe
from hookd.delivery.client import Call
from hookd.delivery.connection import ProtocolError
from hookd.delivery.outcomes import answered, not_answered, stalled
from hookd.delivery.retries import DELIVERED, ErrorKind, Outcome, failure
from hookd.delivery.wire import Response
from hookd.errors import BlockedDestination
from hookd.requests.head import attempt_bytes
from hookd.requests.render import Request
from hookd.requests.signing import Signer
from hookd.requests.target import Target

if TYPE_CHECKING:
    from hookd.delivery.endpoint import Endpoint

Done = Callable[[Outcome], None]
_EXPECTED = (BlockedDestination, ProtocolError, OSError, ValueError)

# the stages of an attempt (PROBE: sent as a half-open circuit's one probe)
NEW, FOR_ENDPOINT, FOR_GLOBAL, SENT, PROBE, ENDED = range(6)


class Sending:
    """An attempt under way, started as it is made: in the common case (both circuits
    closed, both slots free: `Endpoint.take`) on the wire when made, else parked, or a
    `Ticket` waiting for a slot. `cancel()` at any stage (a revoked partition, the
    shutdown): nothing more is sent, `done` is not told. `done` may be told before the
    maker has the Sending (parked at once, or a request that cannot be written)."""

    __slots__ = ("call", "done", "endpoint", "extra", "request", "signer", "stage", "target",
                 "timeout", "tls")

    def __init__(self, endpoint: Endpoint, target: Target, request: Request,
                 signer: Signer | None, timeout: float, tls: ssl.SSLContext | None,
                 extra: Mapping[str, str] | None, done: Done) -> None:
        self.endpoint, self.target, self.request = endpoint, target, request
        self.signer, self.timeout, self.tls, self.extra = signer, timeout, tls, extra
        self.done = done
        self.stage = NEW
        self.call: Call | None = None
        if endpoint.take(request.hook_id):  # the common case, in one call: nothing to
            self._send(False)  # check again before sending
        else:
            self._start()

    def _start(self) -> None:
        """The full way: a circuit open or half-open, or no slot free."""
        endpoint, hook = self.endpoint, self.request.hook_id
        if endpoint.circuit.open_until != 0.0 or hook in endpoint.hooks:  # (not both closed)
            closed = endpoint.unavailable(hook)
            if closed is not None:
                return self._end(closed)
            if endpoint.take():
                return self._send(True)  # (half-open: the probe is decided there)
        if endpoint.stalled():
            return self._end(stalled(endpoint.name, endpoint.shared.policy.cooldown))
        self.stage = FOR_ENDPOINT
        if endpoint.line_up(self):  # its endpoint's slot free (the global cap is full)
            self._global()

    # -- the Ticket: waiting for a slot ----------------------------------------------------
    @property
    def waiting(self) -> bool:
        return self.stage == FOR_ENDPOINT or self.stage == FOR_GLOBAL

    def grant(self) -> bool:
        if self.stage == FOR_ENDPOINT:
            self._global()
            return True
        if self.stage == FOR_GLOBAL:
            self._send(True)
            return True
        return False  # cancelled meanwhile: the slot goes to the next one

    def refuse(self, exc: BaseException) -> None:
        """The endpoint stalled while this one waited for its slot: parked, not sent."""
        self.stage = ENDED
        endpoint = self.endpoint
        endpoint.leave()
        self.done(stalled(endpoint.name, endpoint.shared.policy.cooldown))

    def _global(self) -> None:
        total = self.endpoint.shared.total
        if total.free > 0 and not total.waiters:  # (`total.try_take()`, inline)
            total.free -= 1
            self._send(True)
        else:
            self.stage = FOR_GLOBAL
            total.wait(self)

    # -- on the wire ------------------------------------------------------------------------
    def _send(self, check: bool) -> None:
        """`check`: the circuits were not found closed just now (it waited for a slot, or
        one is open or half-open)."""
        endpoint, request = self.endpoint, self.request
        self.stage = SENT
        if check and (endpoint.circuit.open_until != 0.0 or request.hook_id in endpoint.hooks):
            # not both closed (asked inline: a queued attempt's common case asks no
            # more): one may have opened meanwhile, or this is a half-open one's probe
            closed = endpoint.blocked(request.hook_id)
            if closed is not None:
                endpoint.release(False)
                return self._end(closed)
            if probing(endpoint.circuit, endpoint.hooks, request.hook_id):
                self.stage = PROBE  # (let through as a half-open circuit's probe)
        timestamp = int(time.time())  # fresh after a wait, and on each retry
        connections, tls, head = endpoint.connections, self.tls, request.head
        # the hook's head framed at load, unless a plain-HTTP proxy wants the absolute
        # form (Connections.begin rewrites the target and adds Proxy-Authorization)
        if head is not None and (connections.proxy is None or tls is not None):
            signer = self.signer
            data = attempt_bytes(head, request.text, self.target, timestamp, None
                                 if signer is None else
                                 signer.signature(request.webhook_id, timestamp, request.body),
                                 self.extra, request.body)
            if data is not None:
                self.call = connections.send(data, self.target, self.timeout,
                                             endpoint.shared.max_response_bytes, tls,
                                             self._answered)
                return
        headers = request.signed_headers(self.signer, timestamp)
        if self.extra:
            headers.update(self.extra)
        self.call = connections.begin(
            request.method, self.target, headers, request.body, self.timeout,
            endpoint.shared.max_response_bytes, tls, self._answered)

    def _answered(self, response: Response | None, exc: BaseException | None) -> None:
        self.call = None
        if exc is None:
            assert response is not None
            outcome = DELIVERED.get(response.status) or answered(response)
        elif isinstance(exc, _EXPECTED):
            outcome = not_answered(exc, self.timeout)
        else:  # a bug: not retried, and said so
            outcome = failure(ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}"[:300])
        self.endpoint.ended(self.request.hook_id, outcome, exc is None)  # (answered)
        self.stage = ENDED
        self.done(outcome)

    def _end(self, outcome: Outcome) -> None:
        self.stage = ENDED
        self.done(outcome)

    def cancel(self) -> None:
        stage, self.stage = self.stage, ENDED
        endpoint = self.endpoint
        if stage == FOR_GLOBAL:
            endpoint.slots.give()  # the endpoint's slot it held
            endpoint.leave()
        elif stage == FOR_ENDPOINT:
            endpoint.leave()  # (its place in the queue is passed over)
        elif stage in (SENT, PROBE):
            call, self.call = self.call, None
            if call is not None:
                call.cancel()
            if stage == PROBE:  # it will say nothing: the next request may probe (else
                # every one is parked, for good)
                unprobe(endpoint.circuit, endpoint.hooks, self.request.hook_id)
            endpoint.release(False)
