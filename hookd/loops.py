"""The running event loop, looked up once per object instead of once per call.

On Python 3.11, `asyncio.get_running_loop()` (which `asyncio.create_task` and the like
call too) makes a getpid(2) system call each time, to notice a fork. On the delivery path
that is several calls per delivery: `py-spy record --native` of the daemon under load put
6.7 % of its CPU in getpid. Objects on that path keep a `RunningLoop` and call it instead.
"""

from __future__ import annotations

import asyncio


class RunningLoop:
    """`asyncio.get_running_loop()`, remembered while that loop runs."""

    __slots__ = ("_loop",)

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None or not loop.is_running():  # a later loop (tests run one per test)
            loop = self._loop = asyncio.get_running_loop()
        return loop
