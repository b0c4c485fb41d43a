"""A reload storm under steady load: 100 reloads alternating a valid config (a new X-Gen
header value each time, so every request says which generation rendered it) and a broken
one, while 2,000 events flow. Nothing is lost, duplicates only repeat a webhook-id, a
broken config is never applied, and the last valid config is the one left in force."""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

from hookd.requests.signing import webhook_id
from hookd.service.daemon import Daemon
from tests.integration.broker import create_topic
from tests.integration.harness import (
    committed,
    get_json,
    hook,
    produce,
    running,
    unique,
    until,
    wait_ready,
    write_config,
)
from tests.integration.receiver import Receiver

PARTS = 4
EVENTS = 2000
RELOADS = 100
KEYS = 40


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    """As editors and config management do: the daemon never reads half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)


def _generation_config(base: dict[str, Any], n: int, *, broken: bool) -> dict[str, Any]:
    data = yaml.safe_load(yaml.safe_dump(base))
    request = data["hooks"][0]["request"]
    if broken:  # rejected whole; if it were ever applied, its header would show it
        request["headers"]["X-Gen"] = f"broken-{n}"
        request["bogus_key"] = n
    else:
        request["headers"]["X-Gen"] = f"v{n}"
    return data


def _header(daemon: Daemon) -> str:
    hook_ = daemon.runtime.hook("storm")
    assert hook_ is not None
    return hook_.config.request.headers["X-Gen"]


async def _rejected(daemon: Daemon, since: datetime, timeout: float = 10) -> None:
    """Until the reload loop has rejected a config after `since`."""
    await until(lambda: daemon.last_reload["ok"] is False and daemon.last_reload["at"] >= since,
                timeout=timeout)


def _event(i: int) -> tuple[bytes, dict[str, Any]]:
    return f"k{i % KEYS}".encode(), {"event": "Tick", "id": f"t{i}", "seq": i}


async def test_reload_storm_under_load_loses_nothing_and_keeps_the_last_valid_config(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    topic, group = unique("storm"), unique("g")
    await create_topic(broker.bootstrap, topic, PARTS)
    cfg = write_config(tmp_path, broker.bootstrap, topic, [
        hook("storm", "Tick", receiver.url("/storm"), request={"headers": {"X-Gen": "v0"}})],
        group=group, delivery={"allow_networks": ["127.0.0.0/8"], "timeout": "5s",
                               "retry": {"schedule": ["50ms", "100ms", "200ms"]}})
    base = yaml.safe_load(cfg.read_text())
    readiness: list[int] = []

    async with running(cfg) as daemon:
        await wait_ready(daemon)
        health = f"http://127.0.0.1:{daemon.health.port}/readyz"  # type: ignore[union-attr]

        async def load() -> None:
            for start in range(0, EVENTS, 50):
                await produce(broker.bootstrap, topic,
                              [_event(i) for i in range(start, start + 50)])
                await asyncio.sleep(0.08)

        async def probe() -> None:
            while True:
                readiness.append((await get_json(health))[0])
                await asyncio.sleep(0.1)

        producer, prober = asyncio.create_task(load()), asyncio.create_task(probe())
        for i in range(RELOADS - 2):  # the storm: no waiting for the reloads to happen
            _write_atomically(cfg, _generation_config(base, i // 2 + 1, broken=i % 2 == 1))
            daemon.request_reload()
            await asyncio.sleep((0.01, 0.03, 0.06)[i % 3])
        # the last pair: a valid v50, then a broken one; each seen through, so that the
        # expected end state is certain (a burst may coalesce into one reload that reads
        # only the newest file)
        last_valid = RELOADS // 2
        _write_atomically(cfg, _generation_config(base, last_valid, broken=False))
        daemon.request_reload()
        await until(lambda: _header(daemon) == f"v{last_valid}", timeout=10)
        since = datetime.now().astimezone()
        _write_atomically(cfg, _generation_config(base, last_valid, broken=True))
        daemon.request_reload()
        await _rejected(daemon, since)
        storm_generation = daemon.runtime.generation
        assert _header(daemon) == f"v{last_valid}"

        await producer
        await receiver.wait_for(EVENTS, timeout=40)
        # events after the storm are rendered by the last valid config
        await produce(broker.bootstrap, topic, [
            (b"after", {"event": "Tick", "id": f"a{i}", "seq": EVENTS + i}) for i in range(20)])
        await receiver.wait_for(EVENTS + 20)
        _, after_storm = await get_json(health)

        # and a valid file once more: the readiness document follows the last file written
        _write_atomically(cfg, _generation_config(base, last_valid + 1, broken=False))
        daemon.request_reload()
        await until(lambda: _header(daemon) == f"v{last_valid + 1}", timeout=10)
        await produce(broker.bootstrap, topic, [
            (b"final", {"event": "Tick", "id": f"f{i}", "seq": EVENTS + 20 + i})
            for i in range(10)])
        await receiver.wait_for(EVENTS + 30)
        await until(lambda: daemon.source.tracker.committable() == {}  # type: ignore[union-attr]
                    and daemon.source.tracker.in_flight() == 0, 15)  # type: ignore[union-attr]
        status, final = await get_json(health)
        prober.cancel()
        counters = daemon.dispatcher.counters  # type: ignore[union-attr]
        final_generation = daemon.runtime.generation

    offsets = await committed(broker.bootstrap, group, topic, PARTS)
    assert sum(max(o, 0) for o in offsets.values()) == EVENTS + 30  # every offset committed

    # at least once: every event arrived; a duplicate only ever repeats the webhook-id
    first: dict[str, Any] = {}
    for req in receiver.requests:
        body = orjson.loads(req.body)
        assert req.headers["webhook-id"] == webhook_id(body["id"], "storm")
        first.setdefault(body["id"], req)
    expected = ({f"t{i}" for i in range(EVENTS)} | {f"a{i}" for i in range(20)}
                | {f"f{i}" for i in range(10)})
    assert set(first) == expected
    assert counters.dead_lettered == 0

    # a broken config never rendered anything; generations only move forward per key
    gens = {req.headers["x-gen"] for req in receiver.requests}
    assert not {g for g in gens if not g.startswith("v")}, gens
    assert gens <= {f"v{n}" for n in range(last_valid + 2)}
    by_key: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for event_id, req in first.items():
        body = orjson.loads(req.body)
        if event_id.startswith("t"):
            by_key[f"k{body['seq'] % KEYS}"].append((body["seq"], int(req.headers["x-gen"][1:])))
    for key, seen in by_key.items():
        numbers = [n for _, n in sorted(seen)]
        assert numbers == sorted(numbers), f"{key}: an older config after a newer one"
    assert len(gens) > 3, "the storm should show in the headers of the steady load"

    # after the storm: the last valid generation rendered; /readyz said the last file was bad
    assert {first[f"a{i}"].headers["x-gen"] for i in range(20)} == {f"v{last_valid}"}
    assert after_storm["last_reload"]["ok"] is False
    assert any("bogus_key: unknown key" in e for e in after_storm["last_reload"]["error"])
    assert after_storm["config"]["generation"] == storm_generation
    # at most one generation per request (bursts collapse); a reload that starts while the
    # same valid file is still in place may load it twice, so this is not RELOADS // 2
    assert 2 <= storm_generation <= RELOADS + 1
    # then the valid file: applied, and /readyz says so
    assert {first[f"f{i}"].headers["x-gen"] for i in range(10)} == {f"v{last_valid + 1}"}
    assert status == 200 and final["last_reload"] == {
        "ok": True, "at": final["config"]["loaded_at"], "error": None}
    assert final["config"]["generation"] == final_generation == storm_generation + 1
    assert readiness and set(readiness) == {200}, "readiness was lost during the storm"


async def test_a_reload_that_crashes_the_loader_is_rejected_and_reloading_goes_on(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    topic = unique("storm")
    await create_topic(broker.bootstrap, topic, 2)
    cfg = write_config(tmp_path, broker.bootstrap, topic, [
        hook("storm", "Tick", receiver.url("/storm"), request={"headers": {"X-Gen": "v1"}})])
    base = yaml.safe_load(cfg.read_text())
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        bad = _generation_config(base, 2, broken=False)
        bad["hooks"][0]["request"]["headers"]["X-Gen"] = "${file:secrets/a\x00b}"
        _write_atomically(cfg, bad)
        since = datetime.now().astimezone()
        daemon.request_reload()
        await _rejected(daemon, since, timeout=4)
        _write_atomically(cfg, _generation_config(base, 3, broken=False))
        daemon.request_reload()
        await until(lambda: _header(daemon) == "v3", timeout=5)
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Tick", "id": "x"})])
        await receiver.wait_for(1)
    assert receiver.requests[0].headers["x-gen"] == "v3"
