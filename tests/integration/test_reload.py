"""SIGHUP semantics, driven through Daemon.request_reload() (what the handler calls)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.integration.broker import create_topic
from tests.integration.harness import (
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


def _rewrite(path: Path, change: Any) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


async def test_reload_applies_a_changed_url(broker: Any, receiver: Receiver,
                                           tmp_path: Path) -> None:
    topic = unique("reload")
    await create_topic(broker.bootstrap, topic, 2)
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("crm", "Answered", receiver.url("/old"))])
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(broker.bootstrap, topic, [(b"a", {"event": "Answered", "id": "1"})])
        await receiver.wait_for(1, "/old")

        def to_new(data: Any) -> None:
            data["hooks"][0]["request"]["url"] = receiver.url("/new")
        _rewrite(cfg, to_new)
        for _ in range(5):  # a burst of SIGHUPs is one (or at most two) reloads
            daemon.request_reload()
        await until(lambda: daemon.runtime.generation >= 2)
        generation = daemon.runtime.generation
        await produce(broker.bootstrap, topic, [(b"a", {"event": "Answered", "id": "2"})])
        await receiver.wait_for(1, "/new")
        assert generation <= 3
        status, body = await get_json(f"http://127.0.0.1:{daemon.health.port}/readyz")  # type: ignore[union-attr]
    assert status == 200
    assert body["last_reload"]["ok"] is True
    assert body["config"]["generation"] == generation
    assert len(receiver.at("/old")) == 1 and len(receiver.at("/new")) == 1


async def test_broken_reload_keeps_the_old_config(broker: Any, receiver: Receiver,
                                                  tmp_path: Path) -> None:
    topic = unique("reload")
    await create_topic(broker.bootstrap, topic, 2)
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("crm", "Answered", receiver.url("/old"))])
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        good = cfg.read_text()
        cfg.write_text(good.replace("request:", "request:\n    bogus_key: 1", 1))
        daemon.request_reload()
        await until(lambda: daemon.last_reload["ok"] is False)
        assert daemon.runtime.generation == 1
        await produce(broker.bootstrap, topic, [(b"a", {"event": "Answered", "id": "1"})])
        await receiver.wait_for(1, "/old")  # the old hooks still deliver
        status, body = await get_json(f"http://127.0.0.1:{daemon.health.port}/readyz")  # type: ignore[union-attr]
    assert status == 200
    errors = body["last_reload"]["error"]
    assert any("hookd.yaml:" in e and "bogus_key: unknown key" in e for e in errors), errors
    assert body["config"]["generation"] == 1


async def test_a_reload_that_changes_restart_only_sections_says_which(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    """kafka, health and logging are read at start: a reload that changes them keeps them
    and says so, naming the sections (a logging change used to pass without a word)."""
    from structlog.testing import capture_logs

    topic = unique("reload")
    await create_topic(broker.bootstrap, topic, 2)
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("crm", "Answered", receiver.url("/old"))])
    async with running(cfg) as daemon:
        await wait_ready(daemon)

        def louder(data: Any) -> None:
            data["logging"] = {**data.get("logging", {}), "level": "debug"}
        _rewrite(cfg, louder)
        with capture_logs() as logs:
            daemon.request_reload()
            await until(lambda: daemon.runtime.generation >= 2)
    warned = [e for e in logs if e["event"].endswith("settings change only on restart")
              and "sections" in e]
    assert [e["sections"] for e in warned] == [["logging"]], logs
