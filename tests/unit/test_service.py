"""hookd.service: `systemd-analyze verify` accepts it, and it has what SPEC §5 asks for;
hookd@.service (one process per instance, one group) is the same unit but for its health port."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hookd.config.model import Config
from hookd.service.stopping import STOP_BUDGET, TEARDOWN, stop_bound
from tests.unit.conftest import REPO

UNIT = REPO / "hookd.service"
TEMPLATE = REPO / "hookd@.service"
INSTALLED_BIN = "/usr/local/bin/hookd"
SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"


def directives(text: str) -> list[tuple[str, str]]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.append((key.strip(), value.strip()))
    return out


def values(key: str, unit: Path = UNIT) -> list[str]:
    return [v for k, v in directives(unit.read_text()) if k == key]


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze") or (
        SYSTEMD_ANALYZE if os.access(SYSTEMD_ANALYZE, os.X_OK) else None)
    if found is None:
        pytest.fail("systemd-analyze is not installed (apt-get install systemd); it is needed "
                    "to verify hookd.service")
    return found


@pytest.mark.parametrize("source", [UNIT, TEMPLATE], ids=lambda p: p.name)
def test_systemd_analyze_verify(tmp_path: Path, source: Path) -> None:
    hookd_bin = Path(sys.prefix) / "bin" / "hookd"
    assert hookd_bin.is_file() and os.access(hookd_bin, os.X_OK), (
        f"{hookd_bin} missing: is the package installed in this environment?")
    text = source.read_text()
    assert INSTALLED_BIN in text
    unit = tmp_path / source.name
    unit.write_text(text.replace(INSTALLED_BIN, str(hookd_bin)))
    result = subprocess.run([systemd_analyze(), "verify", str(unit)], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path,
                            env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "LC_ALL": "C"})
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    # verify only warns (exit 0) about unknown or unparsable settings: none may be reported
    assert output == "", output


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt setting is reported."""
    hookd_bin = Path(sys.prefix) / "bin" / "hookd"
    unit = tmp_path / "hookd.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_BIN, str(hookd_bin))
                    .replace("Type=notify", "Type=notifyy"))
    result = subprocess.run([systemd_analyze(), "verify", str(unit)], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert "notifyy" in result.stdout + result.stderr


def test_exec_start_runs_the_daemon_which_checks_its_config_itself() -> None:
    """No ExecStartPre=hookd check: its failure would be restarted (test_service_exits)."""
    assert values("ExecStart") == [f"{INSTALLED_BIN} run -c /etc/hookd/hookd.yaml"]
    assert values("ExecStartPre") == []


def test_template_gives_each_instance_its_health_port() -> None:
    assert values("ExecStart", TEMPLATE) == [
        f"{INSTALLED_BIN} run -c /etc/hookd/hookd.yaml --health-listen 127.0.0.1:%i"]
    assert values("ExecStartPre", TEMPLATE) == []


def test_template_is_hookd_service_but_for_its_health_port() -> None:
    """The two units are kept in step: a hardening line added to one is added to both."""
    differ = {"Description", "ExecStart"}
    instance = ("Environment", "HOOKD_INSTANCE=%H-%i")
    assert [d for d in directives(TEMPLATE.read_text())
            if d[0] not in differ and d != instance] == \
        [d for d in directives(UNIT.read_text()) if d[0] not in differ]


def test_template_names_each_instance_for_static_membership() -> None:
    """`kafka.group_instance_id: "hookd-${env:HOOKD_INSTANCE}"` (README): unique per host
    and instance, the same across the instance's restarts."""
    assert "HOOKD_INSTANCE=%H-%i" in values("Environment", TEMPLATE)
    assert not any(v.startswith("HOOKD_INSTANCE=") for v in values("Environment"))


@pytest.mark.parametrize(("key", "expected"), [
    ("Type", "notify"),
    ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("NotifyAccess", "main"),
    ("RestartPreventExitStatus", "78"),
    ("KillSignal", "SIGTERM"),
])
def test_required_settings(key: str, expected: str) -> None:
    assert values(key) == [expected]


def test_watchdog_is_set() -> None:
    (watchdog,) = values("WatchdogSec")
    assert watchdog.rstrip("s").isdigit() and int(watchdog.rstrip("s")) > 0


def test_secrets_come_through_load_credential() -> None:
    creds = values("LoadCredential")
    assert creds, "no LoadCredential="
    for cred in creds:
        name, _, path = cred.partition(":")
        assert name and path.startswith("/"), cred


@pytest.mark.parametrize("unit", [UNIT, TEMPLATE], ids=lambda p: p.name)
def test_the_dynamic_user_can_read_its_config_directory(unit: Path) -> None:
    """systemd.exec(5): a ConfigurationDirectory is not chowned to the service's user (unlike
    State-, Cache-, Logs- and RuntimeDirectory), so a DynamicUser reads it as "others"."""
    assert values("DynamicUser", unit) == ["yes"]
    (directory,) = values("ConfigurationDirectory", unit)
    assert f" -c /etc/{directory}/hookd.yaml" in values("ExecStart", unit)[0]
    (mode,) = values("ConfigurationDirectoryMode", unit)
    assert int(mode, 8) & 0o005 == 0o005, f"others cannot read /etc/{directory} at {mode}"


@pytest.mark.parametrize("unit", [UNIT, TEMPLATE], ids=lambda p: p.name)
def test_stop_timeout_covers_the_whole_stop(unit: Path) -> None:
    """systemd must not SIGKILL before hookd's stop is over: the drain (the default
    shutdown_timeout), the closing steps, every one of them running out of its budget, and
    the process's end (past that, hookd dumps its stacks and exits 1 itself)."""
    (stop,) = values("TimeoutStopSec", unit)
    default = Config.model_fields["shutdown_timeout"].default
    assert stop_bound(default) == default + STOP_BUDGET + TEARDOWN
    assert stop_bound(default) < int(stop.rstrip("s"))
