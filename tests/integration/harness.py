"""Run hookd for real in integration tests: in-process (Daemon phases) or as a process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from hookd.dev.broker import free_port as free_port  # re-exported for the tests
from hookd.service.daemon import Daemon
from tests.integration.broker import create_topic

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

# Timings that make a test group settle in seconds on the test broker (see BROKER_NOTES.md).
FAST_CONSUMER = {"session_timeout": "6s", "heartbeat_interval": "500ms",
                 "fetch_max_wait": "50ms", "retry_fetch_max_wait": "50ms",
                 "commit_interval": "200ms", "revoke_grace": "1s"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def new_topic(bootstrap: str, partitions: int, prefix: str = "topic",
                    configs: dict[str, str] | None = None) -> str:
    """A freshly created topic with a unique name starting with `prefix` (and topic
    `configs`, e.g. ``{"max.message.bytes": ...}``)."""
    name = unique(prefix)
    await create_topic(bootstrap, name, partitions, configs=configs)
    return name


def write_config(folder: Path, bootstrap: str, topic: str, hooks: list[dict[str, Any]], *,
                 dlq: str | None = None, group: str | None = None, health_port: int = 0,
                 **extra: Any) -> Path:
    """A complete main config for tests; returns its path. `extra` overrides top-level keys."""
    config: dict[str, Any] = {
        "kafka": {"bootstrap_servers": [bootstrap], "topics": [topic],
                  "group_id": group or unique("g"), "dead_letter_topic": dlq or f"{topic}.dlq",
                  "consumer": dict(FAST_CONSUMER), "retry_replication": 1},
        "delivery": {"allow_networks": ["127.0.0.0/8"], "timeout": "5s",
                     "retry": {"schedule": ["50ms", "100ms"]}},
        "health": {"listen": f"127.0.0.1:{health_port}"},
        "logging": {"level": "info", "format": "json"},
        "shutdown_timeout": "10s",
        "hooks": hooks,
    }
    config.update(extra)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hookd.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def hook(hook_id: str, event: str | list[str], url: str, **more: Any) -> dict[str, Any]:
    request = {"url": url, **more.pop("request", {})}
    return {"id": hook_id, "event": event, "request": request, **more}


async def produce(bootstrap: str, topic: str,
                  records: Iterable[tuple[bytes | None, bytes | dict[str, Any]]],
                  headers: list[tuple[str, bytes]] | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, v if isinstance(v, bytes) else orjson.dumps(v),
                                       key=k, headers=headers) for k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 20.0, *,
                     settle: float = 0.0) -> list[Any]:
    """Records from the start of `topic` (no group): at least `count` of them. With `settle`,
    go on until none arrived for `settle` s, so the result is everything on the topic (for
    tests that assert there is nothing more than `count`)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50,
                                metadata_max_age_ms=500)
    await consumer.start()
    out: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    quiet_since = loop.time()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            got = [r for records in batch.values() for r in records]
            out.extend(got)
            now = loop.time()
            if got:
                quiet_since = now
            if len(out) >= count and now - quiet_since >= settle:
                return out
            if now > deadline:
                raise AssertionError(f"{len(out)} of {count} records on {topic} in {timeout}s"
                                     + (f" (still arriving after {settle}s)"
                                        if len(out) >= count else ""))
    finally:
        await consumer.stop()


async def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1: none)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        out = {}
        for p in range(partitions):
            value = await consumer.committed(TopicPartition(topic, p))
            out[p] = -1 if value is None else value
        return out
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def running(config: Path) -> AsyncIterator[Daemon]:
    """The daemon's three phases, in this process: startup, run (as a task), shutdown."""
    daemon = Daemon(str(config))
    await daemon.startup()
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon
    finally:
        daemon.request_stop()
        await task
        await daemon.shutdown()


async def until(predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def wait_ready(daemon: Daemon, timeout: float = 20.0) -> None:
    await until(lambda: daemon.state()[0], timeout, "readiness")


class DaemonProcess:
    """`hookd run` as a real process, for signals and kill -9."""

    def __init__(self, config: Path, env: dict[str, str] | None = None,
                 args: list[str] | None = None) -> None:
        self.config = config
        self.args = args or []  # more `hookd run` arguments
        self.log = config.parent / f"hookd-{uuid.uuid4().hex[:6]}.log"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "hookd", "run", "-c",
                                          str(self.config), *self.args], stdout=out,
                                         stderr=subprocess.STDOUT, env=self.env)
        return self

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        try:
            async with asyncio.timeout(timeout):
                while self.proc.poll() is None:
                    await asyncio.sleep(0.05)
        except TimeoutError:  # what it said last (not each delivery) says where it hangs
            said = [raw for raw in self.log.read_bytes().splitlines()
                    if b'"msg":"delivery"' not in raw][-25:]
            raise AssertionError(f"hookd did not exit within {timeout:g}s; its last lines "
                                 "but deliveries:\n" + b"\n".join(said).decode(errors="replace")
                                 ) from None
        return self.proc.returncode

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.log.read_bytes().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                out.append(orjson.loads(raw))
        return out

    def stop_now(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def get_json(url: str) -> tuple[int, dict[str, Any]]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.json()


async def wait_process_ready(port: int, timeout: float = 30.0) -> dict[str, Any]:
    """Poll a hookd process's /readyz until 200."""
    import aiohttp

    async with asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                status, body = await get_json(f"http://127.0.0.1:{port}/readyz")
                if status == 200:
                    return body
            await asyncio.sleep(0.1)
