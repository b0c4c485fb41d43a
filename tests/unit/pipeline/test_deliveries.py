"""hookd.pipeline.deliveries on its own: a delivery's states and who is told of its end,
and the order per key (Chains) as a table of starts and ends."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from hookd.delivery.attempts import Job
from hookd.events.decode import Event, Meta
from hookd.pipeline.deliveries import Chains, Delivery

EVENT = Event("Answered", "e1", {}, Meta("t", 0, 0))


def make(chains: Chains, hook: str, key: bytes | None) -> Delivery:
    job = Job(hook, EVENT, key)
    return Delivery(asyncio.get_running_loop, job, SimpleNamespace(id=hook),  # type: ignore[arg-type]
                    chains)


async def test_finish_tells_its_record_once_and_any_waiter() -> None:
    told: list[Delivery] = []
    d = make(Chains(lambda _: None), "h", b"k")
    d.ends = told.append
    waiter = d.ended  # asked before the end: made pending
    assert not d.done() and not waiter.done()
    d.finish()
    assert d.done() and not d.cancelled() and told == [d] and waiter.done()
    assert d.cancel() is False  # ended: nothing to give up
    assert told == [d]


async def test_cancel_tells_its_record_and_stops_what_it_is_doing() -> None:
    told: list[Delivery] = []
    d = make(Chains(lambda _: None), "h", None)
    stopped: list[bool] = []
    d.handle = SimpleNamespace(cancel=lambda: stopped.append(True))  # type: ignore[assignment]
    d.ends = told.append
    assert d.cancel() is True
    assert d.cancelled() and d.done() and told == [d] and stopped == [True]
    assert d.ended.done()  # asked after the end: made done
    assert d.cancel() is False and told == [d]


async def test_settled_is_its_task_while_it_has_one() -> None:
    d = make(Chains(lambda _: None), "h", None)
    task = asyncio.get_running_loop().create_task(asyncio.sleep(0))
    d.handle = task
    assert d.settled is task
    d.handle = None
    assert d.settled is d.ended
    await task


# each step: ("new", name, hook, key) queues a delivery (started at once when it is its
# turn); ("end", name) ends it (`finish`, then Chains.ended as the dispatcher does);
# ("cancel", name) gives it up; then the names started so far, in order
STEPS: list[tuple[str, list[tuple[Any, ...]], list[str]]] = [
    ("one key, one hook: each waits for the one before",
     [("new", "a", "h", b"k"), ("new", "b", "h", b"k"), ("new", "c", "h", b"k"),
      ("end", "a"), ("end", "b")],
     ["a", "b", "c"]),
    ("all ended: nothing is kept",
     [("new", "a", "h", b"k"), ("new", "b", "h", b"k"), ("end", "a"), ("end", "b")],
     ["a", "b"]),
    ("the second waits until the first ends",
     [("new", "a", "h", b"k"), ("new", "b", "h", b"k")],
     ["a"]),
    ("other keys and other hooks do not wait",
     [("new", "a", "h", b"k"), ("new", "b", "h", b"x"), ("new", "c", "g", b"k"),
      ("new", "d", "h", None), ("new", "e", "h", None)],
     ["a", "b", "c", "d", "e"]),
    ("one cancelled before its turn is passed over",
     [("new", "a", "h", b"k"), ("new", "b", "h", b"k"), ("new", "c", "h", b"k"),
      ("cancel", "b"), ("end", "a")],
     ["a", "c"]),
    ("a chain that ended leaves nothing behind: the next starts at once",
     [("new", "a", "h", b"k"), ("end", "a"), ("new", "b", "h", b"k")],
     ["a", "b"]),
    ("the last cancelled, the chain's next starts at once",
     [("new", "a", "h", b"k"), ("new", "b", "h", b"k"), ("cancel", "b"), ("end", "a"),
      ("new", "c", "h", b"k")],
     ["a", "c"]),
]


@pytest.mark.parametrize(("steps", "started"), [(s, w) for _, s, w in STEPS],
                         ids=[name for name, _, _ in STEPS])
async def test_order_per_key(steps: list[tuple[Any, ...]], started: list[str]) -> None:
    names: dict[int, str] = {}
    seen: list[str] = []

    def start(d: Delivery) -> None:
        d.started = True
        seen.append(names[id(d)])

    chains = Chains(start)
    by_name: dict[str, Delivery] = {}
    for step in steps:
        if step[0] == "new":
            _, name, hook, key = step
            d = by_name[name] = make(chains, hook, key)
            names[id(d)] = name
            if chains.join(d):
                start(d)
        elif step[0] == "end":
            d = by_name[step[1]]
            d.finish()
            if d.chain is not None:
                chains.ended(d)
        else:
            by_name[step[1]].cancel()
            await asyncio.sleep(0)  # (a started one's chain moves on from the loop)
    assert seen == started
    ended = all(d.done() for d in by_name.values())
    if ended:
        assert not chains.last  # (nothing kept for chains with nothing under way)
