"""`hookd run` as a real process: SIGTERM, kill -9, two members of one group, sd_notify."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.broker import create_topic
from tests.integration.harness import (
    DaemonProcess,
    committed,
    free_port,
    get_json,
    hook,
    produce,
    unique,
    until,
    wait_process_ready,
    write_config,
)
from tests.integration.receiver import Receiver

TRACE_BODY = ('{"id": {{ id|tojson }}, "p": {{ meta.partition }}, "o": {{ meta.offset }}}')


@pytest.fixture
def processes() -> Any:
    started: list[DaemonProcess] = []
    yield started
    for proc in started:
        proc.stop_now()


def _events(n: int, prefix: str = "e") -> list[tuple[bytes, dict[str, Any]]]:
    return [(f"key-{i % 16}".encode(), {"event": "Answered", "id": f"{prefix}{i}"})
            for i in range(n)]


async def test_sigterm_drains_in_flight_deliveries_then_commits(
        broker: Any, receiver: Receiver, tmp_path: Path, processes: list[DaemonProcess]) -> None:
    topic, group, port = unique("term"), unique("g"), free_port()
    await create_topic(broker.bootstrap, topic, 4)
    receiver.delay["/slow"] = 1.5
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("slow", "Answered", receiver.url("/slow"))],
                       group=group, health_port=port)
    proc = DaemonProcess(cfg).start()
    processes.append(proc)
    await wait_process_ready(port)
    await produce(broker.bootstrap, topic, [(f"k{i}".encode(), {"event": "Answered", "id": str(i)})
                                            for i in range(20)])
    await until(lambda: receiver.arrivals >= 4, 20)  # deliveries are in flight now
    proc.signal(signal.SIGTERM)
    assert await proc.wait(30) == 0
    assert len(receiver.at("/slow")) == 20  # all answered before exit...
    offsets = await committed(broker.bootstrap, group, topic, 4)
    assert sum(max(o, 0) for o in offsets.values()) == 20  # ...and committed
    assert any(line.get("msg") == "stopped" for line in proc.lines())


async def test_kill_9_loses_nothing_and_redelivers_only_uncommitted(
        broker: Any, receiver: Receiver, tmp_path: Path, processes: list[DaemonProcess]) -> None:
    topic, group, port = unique("kill"), unique("g"), free_port()
    await create_topic(broker.bootstrap, topic, 4)
    receiver.delay["/t"] = 0.01
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("t", "Answered", receiver.url("/t"), request={"body": TRACE_BODY})],
                       group=group, health_port=port,
                       delivery={"allow_networks": ["127.0.0.0/8"], "per_endpoint_in_flight": 4,
                                 "retry": {"schedule": ["50ms"]}})
    total = 600
    await produce(broker.bootstrap, topic, _events(total))
    first = DaemonProcess(cfg).start()
    processes.append(first)
    await until(lambda: len(receiver.requests) >= 150, 60)
    first.proc.kill()  # type: ignore[union-attr]
    await first.wait()
    at_kill = await committed(broker.bootstrap, group, topic, 4)
    before = len(receiver.requests)
    assert before < total, "the kill came too late to prove anything"

    second = DaemonProcess(cfg).start()
    processes.append(second)
    await until(lambda: {orjson.loads(r.body)["id"] for r in receiver.requests}
                >= {f"e{i}" for i in range(total)}, 90)
    bodies = [orjson.loads(r.body) for r in receiver.requests]
    seen = Counter(b["id"] for b in bodies)
    assert set(seen) == {f"e{i}" for i in range(total)}  # none lost
    for body in bodies:
        if seen[body["id"]] > 1:  # a duplicate is an event that was not committed yet
            assert body["o"] >= at_kill[body["p"]], (body, at_kill)
    ids = {}
    for req in receiver.requests:  # duplicates carry the first copy's webhook-id
        ids.setdefault(orjson.loads(req.body)["id"], set()).add(req.headers["webhook-id"])
    assert all(len(v) == 1 for v in ids.values())


async def test_two_processes_share_the_partitions_and_survive_a_death(
        broker: Any, receiver: Receiver, tmp_path: Path, processes: list[DaemonProcess]) -> None:
    """One config, two processes, as hookd@.service runs them: each serves health where
    `--health-listen` says (the config's own port is taken by neither)."""
    topic, group = unique("pair"), unique("g")
    await create_topic(broker.bootstrap, topic, 4)
    ports, unused = [free_port(), free_port()], free_port()
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("t", "Answered", receiver.url("/t"), request={"body": TRACE_BODY})],
                       group=group, health_port=unused)
    procs = [DaemonProcess(cfg, args=["--health-listen", f"127.0.0.1:{port}"]).start()
             for port in ports]
    processes.extend(procs)

    async def assignments() -> list[set[str]]:
        out = []
        for port in ports:
            with contextlib.suppress(Exception):
                _, body = await get_json(f"http://127.0.0.1:{port}/readyz")
                out.append(set(body["assigned_partitions"]))
                continue
            out.append(set())
        return out

    async with asyncio.timeout(40):
        while True:
            a, b = await assignments()
            if a and b and not (a & b) and len(a | b) == 4:
                break
            await asyncio.sleep(0.2)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", unused), timeout=2).close()
    await produce(broker.bootstrap, topic, _events(200, "x"))
    await receiver.wait_for(200, timeout=60)
    served = {orjson.loads(r.body)["p"] for r in receiver.requests}
    assert served == {0, 1, 2, 3}

    procs[1].proc.kill()  # type: ignore[union-attr]
    async with asyncio.timeout(40):
        while (await assignments())[0] != {f"{topic}-{p}" for p in range(4)}:
            await asyncio.sleep(0.2)
    await produce(broker.bootstrap, topic, _events(100, "y"))
    await until(lambda: {orjson.loads(r.body)["id"] for r in receiver.requests}
                >= {f"y{i}" for i in range(100)}, 60)


async def test_notify_socket_sees_ready_reloading_stopping(
        broker: Any, receiver: Receiver, tmp_path: Path, processes: list[DaemonProcess]) -> None:
    topic = unique("notify")
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("h", "Answered", receiver.url("/h"))])
    proc = DaemonProcess(cfg, env={"NOTIFY_SOCKET": str(path)}).start()
    processes.append(proc)

    async def next_message() -> dict[str, str]:
        async with asyncio.timeout(20):
            data = await loop.sock_recv(sock, 4096)
        return dict(line.split("=", 1) for line in data.decode().splitlines())

    try:
        assert (await next_message()).get("READY") == "1"
        proc.signal(signal.SIGHUP)
        reloading = await next_message()
        assert reloading.get("RELOADING") == "1" and int(reloading["MONOTONIC_USEC"]) > 0
        assert (await next_message()).get("READY") == "1"
        proc.signal(signal.SIGTERM)
        assert (await next_message()).get("STOPPING") == "1"
        assert await proc.wait() == 0
    finally:
        sock.close()
