"""A real HTTP receiver on 127.0.0.1 for integration tests: counts, delays, fails on cue."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


async def serve(app: web.Application, ssl_context: ssl.SSLContext | None = None
                ) -> tuple[web.AppRunner, int]:
    """Run `app` on 127.0.0.1 on a free port: (runner to clean up, port)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    return runner, int(runner.addresses[0][1])


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float
    raw_path: str = ""  # path and query as sent, not decoded (request.raw_path)


@dataclass
class Receiver:
    """Answers 200 unless told otherwise: `plan[path]` is a queue of statuses (or
    (status, headers) pairs) used one per request; `delay[path]` seconds before answering."""

    requests: list[Received] = field(default_factory=list)
    plan: dict[str, deque[Any]] = field(default_factory=lambda: defaultdict(deque))
    delay: dict[str, float] = field(default_factory=dict)
    port: int = 0
    arrivals: int = 0  # requests that have started, answered or not
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition | None = None

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._handle)  # CR, LF too (encoded)
        self._runner, self.port = await serve(app)
        self._arrived = asyncio.Condition()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        got = Received(request.method, request.path, dict(request.query),
                       {k.lower(): v for k, v in request.headers.items()},
                       await request.read(), time.monotonic(), request.raw_path)
        self.arrivals += 1
        if self.delay.get(request.path):
            await asyncio.sleep(self.delay[request.path])
        step = self.plan[request.path].popleft() if self.plan[request.path] else 200
        status, headers = step if isinstance(step, tuple) else (step, {})
        self.requests.append(got)
        assert self._arrived is not None
        async with self._arrived:
            self._arrived.notify_all()
        return web.Response(status=status, headers=headers, text="ok" if status < 300 else "no")

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, count: int, path: str | None = None, timeout: float = 30.0) -> None:
        """Until `count` requests (to `path`, if given) have arrived; AssertionError on timeout."""
        assert self._arrived is not None

        def enough() -> bool:
            return len(self.at(path) if path else self.requests) >= count

        async with self._arrived:
            try:
                await asyncio.wait_for(self._arrived.wait_for(enough), timeout)
            except TimeoutError:
                seen = len(self.at(path) if path else self.requests)
                raise AssertionError(f"{seen} of {count} requests arrived"
                                     f"{' at ' + path if path else ''} in {timeout}s") from None
