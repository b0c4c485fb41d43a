"""One failing hook must not hold back its neighbours on the same host (tansu, a real
receiver): a handler that keeps answering 503 opens its own hook's circuit, not the
host's; the neighbours keep their own schedules and Retry-After. A host with nothing
listening still opens one host circuit for all of its hooks."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path
from typing import Any

import yaml

from tests.integration.harness import (
    hook,
    new_topic,
    produce,
    running,
    unique,
    until,
    wait_ready,
    write_config,
)
from tests.integration.receiver import Receiver

DELIVERY = {"allow_networks": ["127.0.0.0/8"], "timeout": "2s",
            "retry": {"schedule": ["5s"], "inline_max": "10s", "jitter": 0.2},
            "circuit_breaker": {"failures": 5, "cooldown": "30s"}}
FLAKY = [0.2, 0.5, 1.0, 2.0]


def _cfg(tmp_path: Path, bootstrap: str, topic: str, hooks: list[dict[str, Any]]) -> Path:
    path = write_config(tmp_path, bootstrap, topic, hooks, delivery=DELIVERY,
                        group=unique("g"))
    data = yaml.safe_load(path.read_text())
    data["kafka"]["retry_topic_prefix"] = unique("retry")  # tiers of its own
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _gaps(times: list[float]) -> list[float]:
    return [round(b - a, 3) for a, b in itertools.pairwise(times)]


async def test_a_broken_path_opens_its_own_circuit_and_its_neighbours_keep_their_schedules(
        bootstrap: str, receiver: Receiver, tmp_path: Path) -> None:
    receiver.plan["/flaky"].extend([503] * 4)  # then 200
    receiver.plan["/down"].extend([503] * 50)
    receiver.plan["/throttled"].append((429, {"Retry-After": "2"}))
    topic = await new_topic(bootstrap, 1, "scope")
    cfg = _cfg(tmp_path, bootstrap, topic, [
        hook("flaky", "Answered", receiver.url("/flaky"),
             retry={"schedule": [f"{s * 1000:g}ms" for s in FLAKY]}),
        hook("down", "Answered", receiver.url("/down"),
             retry={"schedule": ["50ms"] * 8}),
        hook("throttled", "Answered", receiver.url("/throttled"),
             retry={"schedule": ["100ms", "100ms"]})])
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(bootstrap, topic, [(b"call-1", {"event": "Answered", "id": "e1"})])
        await receiver.wait_for(5, "/flaky", timeout=15)
        await receiver.wait_for(2, "/throttled", timeout=15)
        await until(lambda: bool(daemon.state()[1]["open_circuits"]), 10, "an open circuit")
        _, state = daemon.state()
    flaky = [r.at for r in receiver.at("/flaky")]
    throttled = [r.at for r in receiver.at("/throttled")]
    print("\n/flaky attempts at (s from the first):", [round(t - flaky[0], 3) for t in flaky],
          "gaps:", _gaps(flaky))
    print("/throttled attempts at (s from the first):",
          [round(t - throttled[0], 3) for t in throttled])
    print("/down attempts:", len(receiver.at("/down")), "open circuits:",
          state["open_circuits"])
    assert len(flaky) == 5  # its 4 retries, none parked behind /down's circuit
    for gap, planned in zip(_gaps(flaky), FLAKY, strict=True):
        assert 0.8 * planned - 0.02 <= gap <= 1.2 * planned + 0.3, (gap, planned)
    assert len(throttled) == 2 and 1.6 <= throttled[1] - throttled[0] < 3.0  # Retry-After
    (circuit,) = state["open_circuits"]
    assert (circuit["scope"], circuit["hook"]) == ("hook", "down")
    assert circuit["endpoint"] == f"http://127.0.0.1:{receiver.port}"
    assert len(receiver.at("/down")) == 5  # it opened after 5 failures in a row


async def test_a_dead_host_opens_one_host_circuit_for_all_of_its_hooks(
        bootstrap: str, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    topic = await new_topic(bootstrap, 1, "dead")
    cfg = _cfg(tmp_path, bootstrap, topic, [
        hook(name, "Answered", f"http://127.0.0.1:{port}/{name}",
             retry={"schedule": ["50ms"] * 3}) for name in ("a", "b")])
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(bootstrap, topic, [(b"k", {"event": "Answered", "id": f"e{i}"})
                                         for i in range(3)])
        await until(lambda: bool(daemon.state()[1]["open_circuits"]), 10, "an open circuit")
        await until(lambda: daemon.dispatcher is not None
                    and daemon.dispatcher.counters.parked >= 2, 10, "parked deliveries")
        _, state = daemon.state()
    (circuit,) = state["open_circuits"]  # one, for the host: not one per hook
    assert (circuit["scope"], circuit["endpoint"]) == ("host", f"http://127.0.0.1:{port}")
    assert daemon.sender is not None
    for name in ("a", "b"):
        closed = daemon.sender.unavailable(f"http://127.0.0.1:{port}", name)
        assert closed is not None and closed.message.startswith("circuit open for host")
