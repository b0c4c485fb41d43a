"""hookd.service.health: GET /healthz and GET /readyz (JSON), nothing else, on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import TopicPartition

from hookd.delivery.retries import ErrorKind, failure
from hookd.delivery.sender import HttpSender
from hookd.kafka.consumer import RecordAges
from hookd.kafka.stalls import StallWatch
from hookd.pipeline.dispatch import Dispatcher
from hookd.pipeline.runtime import load_config
from hookd.service.health import HealthServer, document, status_line
from hookd.telemetry.logs import REDACTOR
from hookd.telemetry.redact import Redactor
from tests.unit.conftest import WriteConfig

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


# -- what they say: document() and status_line() --------------------------------------------
class Loop:
    """What the document reads of a ConsumerLoop."""

    def __init__(self, partitions: list[tuple[str, int]], lag: dict[str, int]) -> None:
        self.partitions, self._lag = partitions, lag

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in self.partitions]

    def lag(self) -> dict[str, int]:
        return self._lag


class Letters:
    topic = "dlq"

    async def publish(self, letter: Any) -> None:
        raise AssertionError("not used")


def test_document_before_anything_started() -> None:
    ready, body = document(runtime=None, last_reload={"ok": None, "at": None, "error": None},
                           source=None, retries=None, ages=RecordAges(), dispatcher=None,
                           sender=None, stopping=False)
    assert not ready
    assert body["config"] == {"generation": None, "loaded_at": None, "hooks": 0}
    assert body["lag"] == {"total": 0, "partitions": {}}
    assert set(body["counters"].values()) == {0}
    assert body["assigned_partitions"] == body["retry_partitions"] == []
    assert body["event_age_ms"] == RecordAges().summary()
    assert status_line(None, None) == "starting"


def test_document_reads_every_part_and_masks_secrets(
        write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = write_config("""
        kafka: {bootstrap_servers: ["127.0.0.1:9092"], topics: [cc.events], group_id: g}
        hooks:
          - id: crm
            event: Answered
            request: {url: "https://crm.example/hook"}
            auth: {type: bearer, token: "tok-0123456789-secret"}
          - id: gone
            event: Joined
            request: {url: "https://old.example/hook"}
        """)
    runtime = load_config(tree.main)
    monkeypatch.setattr(REDACTOR, "current", Redactor(runtime.secrets))
    sender = HttpSender(runtime.config.delivery)
    crm = sender.endpoints.get("https://crm.example:443")
    for _ in range(runtime.config.delivery.circuit_breaker.failures):
        crm.circuit.record(failure(ErrorKind.CONNECT, "down"), time.monotonic())
    dispatcher = Dispatcher(sender, Letters(), lambda: runtime, REDACTOR)
    first = dispatcher.stats.of(runtime.hooks[0].id)  # the totals are the hooks' sums
    first.delivered, first.waiting, first.dead_lettered = 7, 2, 1
    dispatcher.counters.bad_dead_lettered = 2
    dispatcher.disabled["gone"] = "410 Gone from https://old.example/?t=tok-0123456789-secret"
    source = Loop([("cc.events", 1), ("cc.events", 0)], {"cc.events-0": 3, "cc.events-1": 4})
    retries = Loop([("hookd.retry.30s", 0)], {"hookd.retry.30s-0": 5})
    ages = RecordAges()
    ages.add(2_500.0, 1_000)
    parts: dict[str, Any] = {
        "runtime": runtime, "last_reload": {"ok": True, "at": None, "error": None},
        "source": source, "retries": retries, "ages": ages, "dispatcher": dispatcher,
        "sender": sender}
    ready, body = document(**parts, stopping=False)
    assert ready
    assert body["config"]["hooks"] == 2 and body["config"]["generation"] == runtime.generation
    assert body["assigned_partitions"] == ["cc.events-1", "cc.events-0"]
    assert body["retry_partitions"] == ["hookd.retry.30s-0"]
    assert body["lag"] == {"total": 7, "partitions": {"cc.events-0": 3, "cc.events-1": 4}}
    assert body["event_age_ms"]["records"] == 1
    counters = body["counters"]
    assert (counters["delivered"], counters["retrying"], counters["retrying_in_memory"]) == (
        7, 2 + 5, 2)
    assert counters["dead_lettered"] == 1 + 2 and "failed" not in counters
    assert body["hooks"][0]["dead_lettered"] == 1 and "failed" not in body["hooks"][0]
    assert [(c["endpoint"], c["scope"]) for c in body["open_circuits"]] == [
        ("https://crm.example:443", "host")]
    assert body["disabled_hooks"] == {"gone": "410 Gone from https://old.example/?t=***"}
    assert document(**parts, stopping=True)[0] is False  # stopping: not ready any more
    assert document(**{**parts, "source": Loop([], {})}, stopping=False)[0] is False
    assert status_line(runtime, dispatcher.counters) == (
        f"generation {runtime.generation}, 2 hooks, delivered 7, parked 0, dead-lettered 3")


def test_a_stall_makes_the_document_not_ready_and_says_why_first(
        write_config: WriteConfig) -> None:
    tree = write_config("""
        kafka: {bootstrap_servers: ["127.0.0.1:9092"], topics: [cc.events], group_id: g}
        hooks: []
        """)
    runtime = load_config(tree.main)
    watch = StallWatch("source", 30.0, clock=lambda: 1_700_000_000.0)
    watch.failed("records cc.events-2", "records", "UnsupportedCodecError: no snappy",
                  partition="cc.events-2", offset=41)
    assert watch.stalls() == []  # not yet: younger than stall_after
    watch.clock = lambda: 1_700_000_031.0
    stalls = watch.stalls()
    parts: dict[str, Any] = {
        "runtime": runtime, "last_reload": {"ok": True, "at": None, "error": None},
        "source": Loop([("cc.events", 2)], {}), "retries": None, "ages": RecordAges(),
        "dispatcher": None, "sender": None, "stopping": False}
    assert document(**parts)[0] is True
    ready, body = document(**parts, stalls=stalls)
    assert not ready
    assert body["reason"] == ("source consumer: records: UnsupportedCodecError: no snappy "
                              "(cc.events-2 at offset 41)")
    assert body["since"] == "2023-11-14T22:13:20+00:00"
    assert body["stalls"] == [{"consumer": "source", "kind": "records",
                               "reason": "UnsupportedCodecError: no snappy",
                               "since": "2023-11-14T22:13:20+00:00",
                               "partition": "cc.events-2", "offset": 41}]
    assert status_line(runtime, None, stalls).startswith(
        "STALLED: source consumer: records: UnsupportedCodecError")


async def test_readyz_says_stalled_when_the_document_has_stalls(
        client: aiohttp.ClientSession) -> None:
    server = HealthServer("127.0.0.1:0", lambda: (False, {"stalls": [{"kind": "fetch"}],
                                                         "reason": "gone"}))
    await server.start()
    try:
        status, _type, raw = await fetch(client, server, "/readyz")
    finally:
        await server.stop()
    assert status == 503 and orjson.loads(raw)["status"] == "stalled"
