"""Shutdown's closing steps, each within a budget, and where a step that ran out waited.

After the drain (`shutdown_timeout`), hookd flushes its writes, commits and says goodbye
to the broker. Each of those waits for Kafka's answer, and aiokafka waits for it as long as
its request timeout (40 s), retrying a commit while the coordinator is unknown. A broker
that stops answering mid-stop (frozen by a pause, cut off by a partition) then held the
process until systemd's SIGKILL. Each closing step now has a budget; a step that runs out is
given up with a warning that names what it was waiting for, and the stop goes on. Giving
up loses nothing: only offsets whose deliveries finished (and whose parked records were
acknowledged) are ever committed, so what a step leaves undone is delivered again after
the restart, with the same `webhook-id`.

The budgets add up to `STOP_BUDGET`: hookd exits within `shutdown_timeout + STOP_BUDGET` of
SIGTERM, which the unit files' `TimeoutStopSec=40s` covers at the default 20 s.

`waiting` is written here because nothing in asyncio before 3.14 says where a suspended
task waits: `Task.get_stack()` gives only a suspended coroutine's outermost frame, and the
awaited chain must be walked (`cr_await`) to reach the line that actually waits (aiomonitor
does the same, as a whole console). Python 3.14's `asyncio.capture_call_graph` does it:
call that instead once 3.14 is the floor.
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any, Final

import structlog

from hookd.kafka.connect import stop_client
from hookd.pipeline.dispatch import Dispatcher

log = structlog.get_logger("hookd.daemon")

#: seconds for each step of a stop; their sum is STOP_BUDGET
BUDGETS: Final[dict[str, float]] = {
    "source": 1.0,  # the source loop sees the stop between two fetches (0.2 s each)
    "loops": 1.0,  # the reload, watchdog and retry loops, once cancelled
    "drain": 1.0,  # beyond shutdown_timeout: the deliveries then cancelled unwind
    "flush": 1.5,  # parked, dead-lettered and outcome records still being written
    "commit": 2.0,  # both consumers' finished offsets
    "clients": 2.0,  # the consumers leave the group; the producer and admin close
    "http": 0.5,  # the webhook sender and the health server
}
STOP_BUDGET: Final[float] = sum(BUDGETS.values())
#: seconds for the process's own end once "stopped" is logged (the loop closed, the tasks
#: left cancelled, the interpreter finalized)
TEARDOWN: Final[float] = 5.0


def stop_bound(shutdown_timeout: float) -> float:
    """Seconds from SIGTERM within which hookd is gone, whatever hangs."""
    return shutdown_timeout + STOP_BUDGET + TEARDOWN


def last_resort(after: float) -> None:
    """If the process is still here `after` seconds from now, something no budget reaches
    hangs it (a thread, the loop's own teardown): dump every thread's stack to stderr (the
    journal) and exit 1, before systemd's SIGKILL, which would say nothing. faulthandler
    (the standard library's) does it from a thread of its own, whatever the loop does."""
    faulthandler.dump_traceback_later(after, exit=True)


def arm_last_resort(shutdown_timeout: float) -> None:
    """The last resort for this stop, armed as the shutdown begins: the source loop's step
    (`run_until_stopped`) is spent by then, so what is left of `stop_bound` counts from
    here, and the process is gone within `stop_bound` of SIGTERM."""
    last_resort(stop_bound(shutdown_timeout) - BUDGETS["source"])


_SHOWN = 6  # tasks named in one warning
_UNWIND = 0.1  # of a step's budget, for its task to unwind once cancelled (a client closing)


async def bounded(step: str, work: Awaitable[Any], *, beyond: float = 0.0) -> bool:
    """Await `work` for at most BUDGETS[step] (+ `beyond`) seconds. False if it ran out (a
    warning names the tasks still waiting, and where; `work` is cancelled) or failed (an
    error): the stop goes on either way."""

    async def run() -> None:
        await work

    task = asyncio.create_task(run(), name=f"shutdown {step}")
    if not await _within(task, step, BUDGETS[step] + beyond):
        return False
    if (exc := task.exception()) is not None:
        log.error("shutdown step failed", step=step, error=f"{type(exc).__name__}: {exc}",
                  exc_info=exc)
        return False
    return True


async def _within(task: asyncio.Task[Any], step: str, budget: float) -> bool:
    """Wait for the task; if it is still running near the end of `budget`, say where it
    (and the rest) waits, cancel it and return False. The step never takes more than
    `budget` in all: the last `_UNWIND` of it is the cancelled task's, to unwind."""
    done, _ = await asyncio.wait({task}, timeout=budget - _UNWIND)
    if done:
        return True
    log.warning("shutdown step overran", step=step, budget_s=budget, waiting=waiting(task))
    task.cancel()
    await asyncio.wait({task}, timeout=_UNWIND)
    return False


async def run_until_stopped(run: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    """Run the daemon's `run()` until it ends, or until a stop is asked for: then the
    source loop has its budget to see it (it looks between two fetches) before it is
    cancelled, so a fetch that never comes back cannot keep the stop from starting.
    run()'s own error is raised, as from run() itself."""
    running = asyncio.create_task(run, name="source loop")
    stopping = asyncio.create_task(stop.wait(), name="stop asked")
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if running.done() or await _within(running, "source", BUDGETS["source"]):
            running.result()
    finally:
        stopping.cancel()


async def drain(dispatcher: Dispatcher, timeout: float) -> None:
    """In-flight deliveries get `timeout`; those then cancelled are said (and redelivered)."""
    if abandoned := await dispatcher.drain(timeout):
        log.warning("shutdown timeout: records left uncommitted, they will be redelivered",
                    records=abandoned)


async def stop_clients(clients: Iterable[Any]) -> None:
    """All at once: the consumers' LeaveGroup, the producer's last flush, the admin's close.
    One that fails does not keep the others from closing."""
    await asyncio.gather(*(stop_client(client) for client in clients), return_exceptions=True)


def waiting(first: asyncio.Future[Any] | None = None) -> list[str]:
    """The pending tasks as `name: where` (see `where`): `first` first, then those waiting in
    hookd's code, then the rest (the clients' own routines); a task awaiting only a future
    (a gather) says nothing and is left out."""
    me = asyncio.current_task()
    said = [(t, where(t)) for t in asyncio.all_tasks() if t is not me and not t.done()]
    said.sort(key=lambda pair: (pair[0] is not first, "hookd" not in pair[1]))
    return [f"{t.get_name()}: {at}" for t, at in said if at][:_SHOWN]


def where(task: asyncio.Task[Any]) -> str:
    """The await chain of a suspended task, outermost first, as `function (file:line)`,
    asyncio's own frames and this module's left out (they say nothing of what waits)."""
    coro: Any = task.get_coro()
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        if not frame.f_code.co_filename.startswith(_QUIET):
            frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    if len(frames) > 3:  # the task's own coroutine, then the innermost two
        frames = [frames[0], *frames[-2:]]
    return " > ".join(f"{f.f_code.co_name} ({_short(f.f_code.co_filename)}:{f.f_lineno})"
                      for f in frames)


_QUIET: Final[tuple[str, ...]] = (os.path.dirname(asyncio.__file__), __file__)


def _short(path: str) -> str:
    """aiokafka/consumer/consumer.py (installed), hookd/kafka/consumer.py (a checkout):
    from the package on."""
    _, marker, tail = path.rpartition(f"{os.sep}site-packages{os.sep}")
    if marker:
        return tail
    here = os.getcwd() + os.sep
    return path[len(here):] if path.startswith(here) else path
