"""Slices: at most `size` deliveries start per event-loop iteration, first come first served."""

from __future__ import annotations

import asyncio

from hookd.pipeline.slices import Slices


async def _iterations(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_the_first_slice_goes_at_once_the_rest_in_later_iterations() -> None:
    slices = Slices(3)
    started: list[tuple[int, int]] = []  # (delivery, iteration)
    iteration = 0

    async def delivery(n: int) -> None:
        turn = slices.turn()
        if turn is not None:
            await turn
        started.append((n, iteration))

    tasks = [asyncio.create_task(delivery(n)) for n in range(8)]
    while len(started) < 8:
        await asyncio.sleep(0)
        iteration += 1
        assert iteration < 50
    await asyncio.gather(*tasks)
    assert [n for n, _ in started] == list(range(8))  # in the order they asked
    per_iteration: dict[int, int] = {}
    for _, it in started:
        per_iteration[it] = per_iteration.get(it, 0) + 1
    assert max(per_iteration.values()) <= 3
    assert len(per_iteration) >= 3  # 8 deliveries in slices of 3


async def test_io_between_slices() -> None:
    """A callback scheduled after the first slice (an answer read, the next fetch) runs
    before the last slice starts."""
    slices = Slices(2)
    order: list[str] = []

    async def delivery(n: int) -> None:
        turn = slices.turn()
        if turn is not None:
            await turn
        order.append(f"d{n}")

    tasks = [asyncio.create_task(delivery(n)) for n in range(6)]
    await asyncio.sleep(0)  # the first slice has started
    asyncio.get_running_loop().call_soon(order.append, "io")
    await asyncio.gather(*tasks)
    assert order.index("io") < order.index("d5")
    assert order.index("io") > order.index("d1")


async def test_a_cancelled_waiter_gives_its_turn_on() -> None:
    slices = Slices(1)
    assert slices.turn() is None
    first, second = slices.turn(), slices.turn()
    assert first is not None and second is not None
    first.cancel()
    await _iterations(2)
    assert second.done() and not second.cancelled()


async def test_idle_after_a_burst() -> None:
    """No refill is kept scheduled once nothing asks: the loop can sleep."""
    slices = Slices(2)
    for _ in range(5):
        turn = slices.turn()
        if turn is not None:
            await turn
    await _iterations(3)
    assert not slices.scheduled
    assert slices.left == 2
