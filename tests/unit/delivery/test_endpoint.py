"""hookd.delivery.slots and hookd.delivery.endpoint: the slots' order, cancellation, an
endpoint's in-flight caps and its stall watch (no network)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hookd.delivery.endpoint import Endpoint
from hookd.delivery.endpoints import Endpoints
from hookd.delivery.slots import Slots, Stalled


class EndpointLimits:
    """The endpoints seen by name, as a caller holding only names uses them."""

    def __init__(self, **kwargs: Any) -> None:
        self.endpoints = Endpoints(**kwargs)

    @property
    def in_flight(self) -> int:
        return self.endpoints.in_flight

    @property
    def _endpoints(self) -> dict[str, Endpoint]:
        return self.endpoints._all

    @property
    def crowded(self) -> Any:
        return self.endpoints.crowded

    @crowded.setter
    def crowded(self, value: Any) -> None:
        self.endpoints.crowded = value

    def try_acquire(self, name: str) -> Endpoint | None:
        endpoint = self.endpoints.get(name)
        return endpoint if endpoint.try_acquire() else None

    async def acquire(self, name: str) -> Endpoint:
        endpoint = self.endpoints.get(name)
        await endpoint.acquire()
        return endpoint

    def release(self, _name: str, endpoint: Endpoint, answered: bool = True) -> None:
        endpoint.release(answered)

    def stalled(self, name: str) -> bool:
        endpoint = self.endpoints.find(name)
        return endpoint is not None and endpoint.stalled()


async def test_slots_are_first_come_first_served() -> None:
    slots = Slots(1)
    assert slots.try_take()
    order: list[int] = []

    async def waiter(n: int) -> None:
        await slots.take()
        order.append(n)

    tasks = [asyncio.create_task(waiter(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert not slots.try_take()  # others queue: no barging in
    for _ in range(3):
        slots.give()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    slots.give()
    assert slots.free == 1 and not slots.waiting()


async def test_a_cancelled_waiter_that_was_handed_a_slot_passes_it_on() -> None:
    slots = Slots(1)
    assert slots.try_take()
    first = asyncio.create_task(slots.take())
    second = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    slots.give()  # handed to `first`...
    first.cancel()  # ...which is cancelled before it runs
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 1.0)  # the slot went on to `second`
    assert slots.free == 0


async def test_fail_waiters_raises_in_each_waiter() -> None:
    slots = Slots(0)
    tasks = [asyncio.create_task(slots.take()) for _ in range(2)]
    await asyncio.sleep(0)
    slots.fail_waiters(Stalled("e"))
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        assert isinstance(result, Stalled)


async def test_try_acquire_takes_both_slots_or_none() -> None:
    limits = EndpointLimits(per_endpoint=2, total=1)
    a = limits.try_acquire("http://a:80")
    assert a is not None and limits.in_flight == 1
    assert limits.try_acquire("http://b:80") is None  # the global cap is full
    assert "http://b:80" not in limits._endpoints  # nothing left behind
    limits.release("http://a:80", a)
    assert limits.in_flight == 0 and limits._endpoints == {}


async def test_one_stall_timer_turns_the_whole_queue_away() -> None:
    limits = EndpointLimits(per_endpoint=1, total=10, stall_after=0.1)
    held = limits.try_acquire("http://hole:80")  # in flight, never answered
    assert held is not None
    waiting = [asyncio.create_task(limits.acquire("http://hole:80")) for _ in range(5)]
    await asyncio.sleep(0)
    assert limits._endpoints["http://hole:80"].watch is not None
    results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 2.0)
    assert all(isinstance(r, Stalled) for r in results)
    assert limits.stalled("http://hole:80")
    limits.release("http://hole:80", held, answered=False)
    assert limits.in_flight == 0 and limits._endpoints == {}


async def test_a_slow_but_answering_endpoint_is_not_stalled() -> None:
    limits = EndpointLimits(per_endpoint=1, total=10, stall_after=0.1)
    held = limits.try_acquire("http://slow:80")
    assert held is not None
    waiter = asyncio.create_task(limits.acquire("http://slow:80"))
    for _ in range(3):  # answers keep coming, each a little under stall_after apart
        await asyncio.sleep(0.06)
        limits.release("http://slow:80", held)
        held = await asyncio.wait_for(waiter, 1.0)
        waiter = asyncio.create_task(limits.acquire("http://slow:80"))
    limits.release("http://slow:80", held)
    state = await asyncio.wait_for(waiter, 1.0)
    limits.release("http://slow:80", state)
    assert limits.in_flight == 0


async def test_acquire_cancelled_while_waiting_leaves_nothing_behind() -> None:
    limits = EndpointLimits(per_endpoint=1, total=10, stall_after=5.0)
    held = limits.try_acquire("http://e:80")
    assert held is not None
    waiter = asyncio.create_task(limits.acquire("http://e:80"))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    limits.release("http://e:80", held)
    assert limits._endpoints == {} and limits.in_flight == 0
    assert limits.try_acquire("http://e:80") is not None


async def test_endpoint_limits_alone() -> None:
    limits = EndpointLimits(per_endpoint=1, total=2)
    order: list[str] = []
    gate = asyncio.Event()

    async def use(endpoint: str, name: str) -> None:
        state = await limits.acquire(endpoint)
        order.append(f"+{name}")
        await gate.wait()
        order.append(f"-{name}")
        limits.release(endpoint, state)

    tasks = [asyncio.create_task(use("http://a:80", "a1")),
             asyncio.create_task(use("http://a:80", "a2")),
             asyncio.create_task(use("http://b:80", "b1"))]
    await asyncio.sleep(0.01)
    assert order == ["+a1", "+b1"]  # a2 waits for a's slot, not b's
    assert limits.in_flight == 2
    gate.set()
    await asyncio.gather(*tasks)
    assert limits.in_flight == 0
    assert order.index("+a2") > order.index("-a1")
    assert limits._endpoints == {}  # idle endpoints are dropped


async def test_a_cancelled_waiter_gives_everything_back() -> None:
    limits = EndpointLimits(per_endpoint=1, total=1)
    gate = asyncio.Event()

    async def use() -> None:
        state = await limits.acquire("http://a:80")
        try:
            await gate.wait()
        finally:
            limits.release("http://a:80", state)

    first, second = asyncio.create_task(use()), asyncio.create_task(use())
    await asyncio.sleep(0.01)
    second.cancel()
    gate.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await second
    assert limits.in_flight == 0 and limits._endpoints == {}


def answer_elsewhere(limits: EndpointLimits) -> None:
    other = limits.try_acquire("http://ok:80")
    assert other is not None
    limits.release("http://ok:80", other)


async def test_a_deep_queue_is_turned_away_after_a_tenth_of_stall_after() -> None:
    limits = EndpointLimits(per_endpoint=1, total=10, stall_after=1.0, deep_queue=3)
    held = limits.try_acquire("http://hole:80")  # in flight, never answered
    assert held is not None
    waiting = [asyncio.create_task(limits.acquire("http://hole:80")) for _ in range(2)]
    await asyncio.sleep(0.15)
    answer_elsewhere(limits)
    assert not limits.stalled("http://hole:80")  # two waiting: not deep, a second to go
    waiting.append(asyncio.create_task(limits.acquire("http://hole:80")))
    await asyncio.sleep(0)
    assert limits.stalled("http://hole:80")  # three waiting, silent while another answered
    results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 0.5)
    assert all(isinstance(r, Stalled) for r in results)
    with pytest.raises(Stalled):  # at once: it stays stalled until it answers, its queue
        await asyncio.wait_for(limits.acquire("http://hole:80"), 0.3)  # shallow or not
    limits.release("http://hole:80", held)  # it answers
    assert not limits.stalled("http://hole:80")
    assert limits.in_flight == 0 and limits._endpoints == {}


async def test_a_deep_queue_at_an_endpoint_that_answers_is_not_turned_away() -> None:
    limits = EndpointLimits(per_endpoint=1, total=10, stall_after=1.0, deep_queue=3)
    held = limits.try_acquire("http://slow:80")
    assert held is not None
    waiting = [asyncio.create_task(limits.acquire("http://slow:80")) for _ in range(4)]
    for task in waiting:  # an answer every 60 ms: under a tenth of stall_after apart
        await asyncio.sleep(0.06)
        assert not limits.stalled("http://slow:80")
        limits.release("http://slow:80", held)
        held = await asyncio.wait_for(task, 1.0)
    limits.release("http://slow:80", held)
    assert limits.in_flight == 0


async def test_a_deep_queue_is_not_turned_away_while_nothing_else_answers_either() -> None:
    """hookd's own pause (its loop busy, the process descheduled) silences every endpoint
    at once: that counts against none of them before `stall_after`."""
    limits = EndpointLimits(per_endpoint=1, total=10, stall_after=0.5, deep_queue=2)
    held = limits.try_acquire("http://busy:80")
    assert held is not None
    waiting = [asyncio.create_task(limits.acquire("http://busy:80")) for _ in range(3)]
    await asyncio.sleep(0.15)
    assert not limits.stalled("http://busy:80")
    await asyncio.sleep(0.4)  # past stall_after: the plain rule
    assert limits.stalled("http://busy:80")
    await asyncio.gather(*waiting, return_exceptions=True)
    limits.release("http://busy:80", held, answered=False)


async def test_a_slow_endpoint_with_a_deep_queue_is_judged_by_its_own_pace() -> None:
    limits = EndpointLimits(per_endpoint=1, total=10, stall_after=5.0, deep_queue=2)
    held = limits.try_acquire("http://slow:80")
    assert held is not None
    waiting = [asyncio.create_task(limits.acquire("http://slow:80")) for _ in range(6)]
    for _ in range(3):  # it answers every 80 ms: a usual gap of ~80 ms
        await asyncio.sleep(0.08)
        limits.release("http://slow:80", held)
        held = await asyncio.wait_for(waiting.pop(0), 1.0)
    await asyncio.sleep(0.6)  # silent for 0.6 s: over stall_after / 10, under ten gaps
    answer_elsewhere(limits)
    assert not limits.stalled("http://slow:80")
    await asyncio.sleep(1.0)  # now 1.6 s: over ten of its gaps (even if each took 0.12 s)
    answer_elsewhere(limits)
    assert limits.stalled("http://slow:80")
    await asyncio.gather(*waiting, return_exceptions=True)
    limits.release("http://slow:80", held, answered=False)


async def test_a_deep_queue_waits_for_stall_after_while_the_daemon_is_not_crowded() -> None:
    limits = EndpointLimits(per_endpoint=1, total=10, stall_after=1.0, deep_queue=2)
    crowded = False
    limits.crowded = lambda: crowded
    held = limits.try_acquire("http://busy:80")
    assert held is not None
    waiting = [asyncio.create_task(limits.acquire("http://busy:80")) for _ in range(3)]
    await asyncio.sleep(0.15)
    answer_elsewhere(limits)
    assert not limits.stalled("http://busy:80")  # deep and silent, but nothing at risk
    crowded = True
    assert limits.stalled("http://busy:80")
    await asyncio.gather(*waiting, return_exceptions=True)
    limits.release("http://busy:80", held, answered=False)
