"""hookd.service.daemon.Daemon without Kafka: what happens when one of its loops dies. The whole
daemon, against the real broker, is in tests/integration/test_daemon.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from hookd.service.daemon import Daemon


async def _ended(daemon: Daemon, coro: object, name: str) -> None:
    task: asyncio.Task[None] = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]
    task.add_done_callback(daemon._task_ended)
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)  # the done callback runs on the next turn of the loop


async def test_a_loop_that_dies_stops_the_daemon_as_a_failure() -> None:
    daemon = Daemon("/nonexistent/hookd.yaml")

    async def retry_loop() -> None:
        raise RuntimeError("lost track of an offset")

    await _ended(daemon, retry_loop(), "retry loop")
    assert daemon.failed
    assert daemon._stop.is_set()  # main() then shuts down and returns 1


async def test_a_loop_cancelled_at_shutdown_is_not_a_failure() -> None:
    daemon = Daemon("/nonexistent/hookd.yaml")
    task = asyncio.create_task(asyncio.sleep(60), name="watchdog loop")
    task.add_done_callback(daemon._task_ended)
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)
    assert not daemon.failed and not daemon._stop.is_set()


def test_crowded_at_half_the_record_budget() -> None:
    """The record budget is 4 x max_in_flight; deep queues are turned away from half of it."""
    daemon = Daemon("/nonexistent/hookd.yaml")
    daemon._started_with = SimpleNamespace(  # type: ignore[assignment]
        delivery=SimpleNamespace(max_in_flight=10))
    assert not daemon._crowded()  # no dispatcher yet: nothing in flight
    for pending, crowded in [(0, False), (19, False), (20, True), (40, True)]:
        daemon.dispatcher = SimpleNamespace(pending=pending)  # type: ignore[assignment]
        assert daemon._crowded() is crowded, pending


@pytest.mark.parametrize(("host", "port", "written"), [
    ("127.0.0.1", 8081, "127.0.0.1:8081"), ("::1", 8081, "[::1]:8081"),
    ("localhost", 9, "localhost:9")])
def test_the_started_line_writes_the_health_address_as_one_would(
        host: str, port: int, written: str) -> None:
    from hookd.service.daemon import _address

    assert _address(host, port) == written
