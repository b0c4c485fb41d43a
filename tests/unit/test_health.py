"""hookd.health: GET /healthz and GET /readyz (JSON), nothing else, on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest

from hookd.health import HealthServer

BODY: dict[str, Any] = {
    "config": {"generation": 3, "loaded_at": datetime(2024, 5, 1, 12, 0, tzinfo=UTC), "hooks": 2},
    "counters": {"delivered": 5, "in_flight": 0},
    "disabled_hooks": {},
}


class State:
    def __init__(self) -> None:
        self.ready = False
        self.calls = 0

    def __call__(self) -> tuple[bool, dict[str, Any]]:
        self.calls += 1
        return self.ready, dict(BODY)


@pytest.fixture
def state() -> State:
    return State()


@pytest.fixture
async def health(state: State) -> AsyncIterator[HealthServer]:
    server = HealthServer("127.0.0.1:0", state)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def url(server: HealthServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def fetch(client: aiohttp.ClientSession, server: HealthServer, path: str,
                method: str = "GET") -> tuple[int, str, bytes]:
    async with client.request(method, url(server, path), allow_redirects=False) as resp:
        return resp.status, resp.content_type, await resp.read()


def test_listen_is_parsed() -> None:
    server = HealthServer("[::1]:8081", lambda: (True, {}))
    assert (server.host, server.port) == ("::1", 8081)
    server = HealthServer("127.0.0.1:0", lambda: (True, {}))
    assert (server.host, server.port) == ("127.0.0.1", 0)


async def test_port_zero_learns_the_real_port(health: HealthServer) -> None:
    assert health.port > 0


@pytest.mark.parametrize("ready", [False, True])
async def test_healthz_is_200_json_whatever_readiness(
        health: HealthServer, client: aiohttp.ClientSession, state: State, ready: bool) -> None:
    state.ready = ready
    status, ctype, body = await fetch(client, health, "/healthz")
    assert status == 200
    assert ctype == "application/json"
    doc = orjson.loads(body)
    assert doc["status"] == "ok"
    assert doc["config"] == {"generation": 3, "loaded_at": "2024-05-01T12:00:00+00:00",
                             "hooks": 2}
    assert doc["counters"] == {"delivered": 5, "in_flight": 0}


async def test_readyz_follows_the_state_function(
        health: HealthServer, client: aiohttp.ClientSession, state: State) -> None:
    for ready, expected in [(False, 503), (True, 200), (False, 503), (True, 200)]:
        state.ready = ready
        status, ctype, body = await fetch(client, health, "/readyz")
        assert status == expected
        assert ctype == "application/json"
        doc = orjson.loads(body)
        assert doc["status"] == ("ready" if ready else "not ready")
        assert doc["config"]["generation"] == 3
    assert state.calls == 4  # asked on every request, never cached


@pytest.mark.parametrize("path", ["/", "/metrics", "/healthz/", "/readyz/x", "/health",
                                  "/HEALTHZ", "/static/../healthz.txt", "/favicon.ico"])
async def test_every_other_path_is_404(health: HealthServer, client: aiohttp.ClientSession,
                                       path: str) -> None:
    status, _, _ = await fetch(client, health, path)
    assert status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_other_methods_are_405(health: HealthServer, client: aiohttp.ClientSession,
                                     state: State, path: str, method: str) -> None:
    state.ready = True
    status, _, _ = await fetch(client, health, path, method)
    assert status == 405


async def test_stop_closes_the_port(state: State, client: aiohttp.ClientSession) -> None:
    server = HealthServer("127.0.0.1:0", state)
    await server.start()
    port = server.port
    await server.stop()
    await server.stop()  # twice is fine
    with pytest.raises(aiohttp.ClientConnectionError):
        async with client.get(f"http://127.0.0.1:{port}/healthz"):
            pass
