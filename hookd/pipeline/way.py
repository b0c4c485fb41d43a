"""A delivery's way, from its turn to its end. The common way (rendered, signed, sent,
answered 2xx) runs from callbacks, without a task: started in slices of the loop, ended
by the connection's own callback. Anything else (a retry, a parking, a dead letter, an
OAuth2 token, a rate limit) goes on in a task from the moment it leaves that way, and the
task's end is the delivery's end. The order per key is kept by `Chains`: a key's next
delivery to a hook starts when the one before it has ended."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Coroutine
from functools import partial
from typing import Any

import structlog

from hookd.delivery.attempts import Attempts, Job
from hookd.delivery.retries import ErrorKind, Outcome, Verdict, failure
from hookd.delivery.sender import Sender
from hookd.errors import RenderError
from hookd.events.decode import Event
from hookd.kafka.outcomelog import Entry, OutcomeLog
from hookd.kafka.parking import ParkingLot
from hookd.loops import RunningLoop
from hookd.pipeline.afterwards import Afterwards
from hookd.pipeline.deliveries import FOLLOWS, IN_BATCH, Chains, Delivery
from hookd.pipeline.endings import Endings
from hookd.requests.render import CompiledHook

log = structlog.get_logger("hookd.dispatch")
# deliveries started (rendered, signed, sent or queued for a slot) per iteration of the
# loop: the loop reads answers and the next fetch between each SLICE. A fetch of 200
# records matched by three hooks is 600 deliveries: started together, the loop read no
# answer until the last was rendered (20 to 40 ms on a slow core), and every answer
# waiting meanwhile counted as latency.
SLICE = 50
_DELIVERED = Verdict.DELIVERED


class Way:
    """Takes each delivery from its turn to its end (the dispatcher's, one per daemon)."""

    def __init__(self, sender: Sender, attempts: Attempts, endings: Endings,
                 afterwards: Afterwards, disabled: dict[str, str], loop: RunningLoop,
                 parking: ParkingLot | None = None, outcomes: OutcomeLog | None = None,
                 ) -> None:
        self.sender, self.disabled, self.parking, self.outcomes = (
            sender, disabled, parking, outcomes)
        self._attempts, self._endings, self._afterwards = attempts, endings, afterwards
        self._loop = loop
        self._chains = Chains(self._go)  # the order per key
        self._ready: deque[Delivery] = deque()  # to start, SLICE at a time
        self._starting = False  # a slice is due in the next iteration

    def delivery(self, job: Job, hook: CompiledHook) -> Delivery:
        """A delivery, started in its turn: in the next slice of the loop, once the one
        before it of its key (to that hook) has ended."""
        delivery = Delivery(self._loop, job, hook, self._chains)
        self._ready.append(delivery)
        if not self._starting:
            self._starting = True
            self._loop().call_soon(self._start_slice)
        return delivery

    def deliveries(self, event: Event, key: bytes | None, hooks: list[CompiledHook],
                   ) -> list[Delivery]:
        """A record's deliveries, one per hook, each started in its turn (`delivery`, for
        a whole record in one call)."""
        loop, chains, ready = self._loop, self._chains, self._ready
        made = []
        for hook in hooks:
            delivery = Delivery(loop, Job(hook.id, event, key), hook, chains)
            ready.append(delivery)
            made.append(delivery)
        if not self._starting:
            self._starting = True
            loop().call_soon(self._start_slice)
        return made

    def _start_slice(self) -> None:
        ready, chains = self._ready, self._chains
        last = chains.last
        for _ in range(min(SLICE, len(ready))):
            delivery = ready.popleft()
            if delivery.state:  # cancelled (revoked) before its turn
                continue
            chain = delivery.chain
            if chain is not None:
                if chain not in last:  # (`chains.join`'s common case, without the call)
                    last[chain] = delivery
                elif not chains.join(delivery):
                    continue  # it waits for the one before it
            self._go(delivery)
        self._starting = bool(ready)
        if ready:
            self._loop().call_soon(self._start_slice)

    def _go(self, delivery: Delivery) -> None:
        """Its turn: the common way is rendered, signed and sent from here, and ends in
        `_answered` without a task; anything else is a task (`_off_the_common_way`)."""
        delivery.started = True
        job, hook = delivery.job, delivery.hook
        if hook.id in self.disabled:
            return self._task(delivery, self._endings.fail(
                job, failure(ErrorKind.HTTP_STATUS, self.disabled[hook.id])))
        if self.parking is not None and hook.endpoint is not None:
            closed = self.sender.unavailable(hook.endpoint, hook.id)
            if closed is not None:  # parked unrendered, with the others of its hook: told
                if not self._endings.gather(  # at the group's ack (`_parked`)
                        job, closed, closed.retry_after or 0.0, partial(self._parked, delivery)):
                    # (too large to join them: parked alone)
                    return self._task(delivery, self._afterwards.park_unrendered(job, hook, closed))
                delivery.handle = FOLLOWS
                if delivery.chain is not None:  # the next of its key need not wait for the
                    self._chains.ended(delivery)  # ack: it joins the group after it, if it
                    # is parked too (their order kept in the record)
                return None
        try:
            request = hook.render(job.event)
        except RenderError as exc:  # render() turns every template error into this
            return self._task(delivery, self._endings.fail(job, failure(ErrorKind.RENDER,
                                                                        str(exc))))
        delivery.request = request
        if hook.waits and not self._attempts.plain(hook):  # a rate limit or an OAuth2 token
            return self._task(delivery, self._afterwards.attempted(job, hook, request))
        delivery.sent_at = time.monotonic()
        handle = self.sender.begin(request, hook.signer, hook.timeout, hook.tls, None,
                                   hook.proxy, partial(self._answered, delivery))
        if delivery.request is request:  # (not answered at once)
            delivery.handle = handle
        return None

    def _answered(self, delivery: Delivery, outcome: Outcome) -> None:
        """Its attempt ended: delivered, the common way's end; anything else goes on in
        a task."""
        request, delivery.request, delivery.handle = delivery.request, None, None
        assert request is not None
        job, hook = delivery.job, delivery.hook
        first = job.attempts + 1
        made = self._attempts.record(job, hook, outcome, first, delivery.sent_at, request)
        if made.verdict is _DELIVERED:  # (`made.ok`, without the property's call)
            job.attempts = first
            if self.outcomes is not None:  # its end is its outcome record's ack; the next
                if delivery.chain is not None:  # of its key goes now, as it would without
                    self._chains.ended(delivery)
                return self._log(delivery, self.outcomes.delivered_entry(
                    job, made.status, request.webhook_id))
            if not delivery.state:  # (`_ended`, inline: the common way's end)
                delivery.finish()
            if delivery.chain is not None:
                self._chains.ended(delivery)
            return None
        self._task(delivery, self._afterwards.after(job, hook, request, made, first))

    def _log(self, delivery: Delivery, entry: Entry) -> None:
        """Its outcome record into the log's open batch, its end at the batch's ack: no
        task (one per delivery cost a third again of the whole delivery)."""
        assert self.outcomes is not None
        if self.outcomes.append(entry, partial(self._logged, delivery, entry)):
            delivery.handle = IN_BATCH
        else:  # (not batched: written on its own)
            self._task(delivery, self.outcomes.write_entry(entry))

    def _logged(self, delivery: Delivery, entry: Entry, failed: BaseException | None) -> None:
        if delivery.state:  # cancelled meanwhile (revoked, the shutdown): not final
            return
        if failed is None:
            delivery.handle = None
            return self._ended(delivery)
        assert self.outcomes is not None  # the batch failed: tried until acked, alone
        self._task(delivery, self.outcomes.write_entry(entry, failed))

    def _parked(self, delivery: Delivery, acked: bool) -> None:
        delivery.handle = None
        if acked:
            self._ended(delivery)
        else:  # given up (the daemon stops): not final
            delivery.cancel()

    def _ended(self, delivery: Delivery) -> None:
        if not delivery.state:
            delivery.finish()
        if delivery.chain is not None:
            self._chains.ended(delivery)

    def _task(self, delivery: Delivery, work: Coroutine[Any, Any, None],
              last: bool = False) -> None:
        """The delivery goes on off the common way: in a task, whose end is its end."""
        task = self._loop().create_task(work)
        delivery.handle = task
        task.add_done_callback(lambda done: self._task_ended(delivery, done, last))

    def _task_ended(self, delivery: Delivery, task: asyncio.Task[None], last: bool) -> None:
        """A bug must not wedge a partition: what raised is dead-lettered as `internal`
        (and if that raises too, the delivery ends there, said in the log)."""
        if task.cancelled():  # (the delivery was cancelled: revoked, or the shutdown)
            return
        exc = task.exception()
        job = delivery.job
        if exc is not None and not last:
            log.error("internal error in a delivery; dead-lettered", hook=job.hook_id,
                      event_id=job.event.id, exc_info=exc)
            return self._task(delivery, self._endings.fail(
                job, failure(ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}")), last=True)
        if exc is not None:
            log.error("internal error in a delivery, and its dead letter failed: given up",
                      hook=job.hook_id, event_id=job.event.id, exc_info=exc)
        delivery.handle = None
        self._ended(delivery)
