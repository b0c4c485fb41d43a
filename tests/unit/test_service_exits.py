"""hookd.service and hookd@.service started on an invalid config, as systemd would: their
ExecStartPre= then ExecStart= commands run for real (the venv's hookd, a temporary config),
and the exit statuses are the ones their Restart= and RestartPreventExitStatus= lines rely
on: a bad config is not restarted every RestartSec= until the start limit.

systemd tests RestartPreventExitStatus= against the MAIN process's exit status only
(service.c, service_shall_restart: `main_exec_status`); a failed ExecStartPre= (a control
process) fills only its own command's status, so the unit fails with no main status and
Restart=on-failure restarts it whatever that command exited with."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from hookd.errors import EX_CONFIG
from tests.unit.test_service import INSTALLED_BIN, TEMPLATE, UNIT, values

INSTALLED_CONFIG = "/etc/hookd/hookd.yaml"


@dataclass(frozen=True)
class Start:
    """How one start of the unit ended: the command that ended it and its exit status."""

    directive: str  # "ExecStartPre" or "ExecStart"
    status: int
    stderr: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def command(line: str, config: Path, instance: str) -> tuple[list[str], bool]:
    """A unit's Exec line as argv for this venv, and whether its failure is ignored ('-')."""
    ignore = line.startswith("-")
    line = line.lstrip("-@:+!")
    assert line.startswith(INSTALLED_BIN), line
    hookd_bin = str(Path(sys.prefix) / "bin" / "hookd")
    text = (line.replace(INSTALLED_BIN, hookd_bin).replace(INSTALLED_CONFIG, str(config))
            .replace("%i", instance))
    assert "%" not in text, f"unexpanded specifier in {line!r}"
    return shlex.split(text), ignore


def start(unit: Path, config: Path, tmp_path: Path) -> Start:
    """What systemd does on `systemctl start`: each ExecStartPre= in order (the start fails at
    the first that fails, unless '-'), then ExecStart=."""
    instance = str(free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKD_", "NOTIFY_"))}
    for setting in values("Environment", unit):
        name, _, value = setting.partition("=")
        env[name] = value.replace(INSTALLED_CONFIG, str(config)).replace(
            "%H", socket.gethostname()).replace("%i", instance)
    for directive in ("ExecStartPre", "ExecStart"):
        for line in values(directive, unit):
            argv, ignore = command(line, config, instance)
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                                  cwd=tmp_path, env=env, stdin=subprocess.DEVNULL)
            if directive == "ExecStart" or (done.returncode != 0 and not ignore):
                return Start(directive, done.returncode, done.stderr)
    raise AssertionError(f"{unit.name}: no ExecStart=")


def restarted(unit: Path, ended: Start) -> bool:
    """systemd's service_shall_restart for a start that ended as `ended` (Restart= values
    other than no, on-failure and always are not used by hookd's units)."""
    (restart,) = values("Restart", unit)
    prevent = {int(code) for line in values("RestartPreventExitStatus", unit)
               for code in line.split()}
    if ended.directive == "ExecStart" and ended.status in prevent:
        return False  # tested against the main process's status, and only that
    assert restart in ("no", "on-failure", "always"), restart
    return restart == "always" or (restart == "on-failure" and ended.status != 0)


@pytest.mark.parametrize("unit", [UNIT, TEMPLATE], ids=lambda p: p.name)
def test_an_invalid_config_stops_the_unit_without_a_restart(tmp_path: Path, unit: Path) -> None:
    config = tmp_path / "hookd.yaml"
    config.write_text("kafka: {bootstrap_servers: 127.0.0.1:1}\nbogus: 1\n")
    ended = start(unit, config, tmp_path)
    assert ended.status == EX_CONFIG, ended
    assert f"{config}:2: bogus: unknown key" in ended.stderr.splitlines(), ended.stderr
    assert not restarted(unit, ended), (
        f"{unit.name}: {ended.directive}= exits {ended.status} on a bad config, and systemd "
        f"restarts the unit every RestartSec= until its start limit")


@pytest.mark.parametrize("unit", [UNIT, TEMPLATE], ids=lambda p: p.name)
def test_the_unit_restarts_on_other_failures(unit: Path) -> None:
    """What RestartPreventExitStatus= leaves to Restart=on-failure: a crash is restarted."""
    assert not restarted(unit, Start("ExecStart", 0, ""))
    assert restarted(unit, Start("ExecStart", 1, ""))
    assert restarted(unit, Start("ExecStartPre", EX_CONFIG, ""))  # systemd's rule, above
    assert values("RestartPreventExitStatus", unit) == [str(EX_CONFIG)]
