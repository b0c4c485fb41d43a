"""`hookd status`: the hook registry read off a health listener (a real one, on 127.0.0.1,
serving a fixed document), as a table or JSON."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from hookd.cli import main
from hookd.cli.status import cmd_status, listen_of, url_of
from hookd.service.health import HealthServer

HOOKS: list[dict[str, Any]] = [
    {"id": "crm", "event": ["Answered"], "method": "POST",
     "url": "https://crm.example/{{ payload.id }}", "state": "enabled", "reason": None,
     "circuit_open_until": None, "delivered": 12, "dead_lettered": 0, "retrying": 0,
     "last_error": None, "last_error_at": None},
    {"id": "slow", "event": ["Answered", "Joined"], "method": "PUT",
     "url": "https://slow.example/h", "state": "circuit-open", "reason": None,
     "circuit_scope": "host", "circuit_open_until": 1_700_000_030.0, "delivered": 1,
     "dead_lettered": 2, "retrying": 3,
     "last_error": "503: Service Unavailable", "last_error_at": 1_700_000_000.0},
]


async def _status(ready: bool, *args: str) -> tuple[int, str, str]:
    doc = {"config": {"generation": 4}, "hooks": HOOKS}
    server = HealthServer("127.0.0.1:0", lambda: (ready, dict(doc)))
    await server.start()
    out, err = io.StringIO(), io.StringIO()
    try:
        code = await asyncio.to_thread(cmd_status, "unused.yaml", f"127.0.0.1:{server.port}",
                                       "--json" in args, out, err)
    finally:
        await server.stop()
    return code, out.getvalue(), err.getvalue()


async def test_the_table_has_one_row_per_hook() -> None:
    code, out, _ = await _status(True)
    print(out)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "EVENT", "REQUEST", "STATE", "DELIVERED",
                                "DEAD-LETTERED", "RETRYING", "LAST", "ERROR"]
    assert lines[1].split()[:4] == ["crm", "Answered", "POST", "https://crm.example/{{"]
    assert "circuit-open (host) until 2023-11-14 22:13:50Z  " in lines[2]
    assert lines[2].split()[-8:-5] == ["1", "2", "3"]  # delivered, dead-lettered, retrying
    assert lines[2].endswith("2023-11-14 22:13:20Z 503: Service Unavailable")
    assert lines[-1] == "2 hook(s), config generation 4; daemon ready"


async def test_json_and_a_daemon_not_ready() -> None:
    code, out, _ = await _status(False, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["status"] == "not ready" and doc["generation"] == 4
    assert [h["id"] for h in doc["hooks"]] == ["crm", "slow"]


def test_nothing_listening_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["status", "--health-listen", f"127.0.0.1:{port}", "--timeout", "1"]) == 1
    assert "hookd status:" in capsys.readouterr().err


def test_health_listen_is_read_from_the_config_alone(tmp_path: Path) -> None:
    path = tmp_path / "hookd.yaml"
    path.write_text("health: {listen: '0.0.0.0:9100'}\nhooks_dir: /nowhere\n"
                    "kafka: {security: {password: '${file:/unreadable}'}}\n")
    assert listen_of(str(path)) == "0.0.0.0:9100"
    assert url_of("0.0.0.0:9100") == "http://127.0.0.1:9100/readyz"
    assert url_of("[::]:9100") == "http://[::1]:9100/readyz"
    path.write_text("kafka: {}\n")
    assert listen_of(str(path)) == "127.0.0.1:8081"
