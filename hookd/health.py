"""The one thing hookd serves: GET /healthz and GET /readyz (JSON). Nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

StateFn = Callable[[], tuple[bool, dict[str, Any]]]  # (ready, body)


def _json(body: dict[str, Any], status: int) -> web.Response:
    return web.Response(body=orjson.dumps(body, default=str), status=status,
                        content_type="application/json")


class HealthServer:
    """`/healthz`: 200 while the loop runs. `/readyz`: 200 when config is loaded and the
    consumer holds an assignment, else 503. Both carry the same state document."""

    def __init__(self, listen: str, state: StateFn) -> None:
        host, _, port = listen.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.state = state
        self._runner: web.AppRunner | None = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        _ready, body = self.state()
        return _json({"status": "ok", **body}, 200)

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready, body = self.state()
        return _json({"status": "ready" if ready else "not ready", **body},
                     200 if ready else 503)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:  # tests ask for a free port; learn which one we got
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
