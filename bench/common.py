"""What the demo and the benchmarks share: child processes that never outlive us, the
receiver, hookd configs, HTTP probes of 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import yaml

from hookd.dev.broker import parent_death_signal

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
WHSEC_A = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WHSEC_B = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
FETCH_WAIT_MS = 20  # the consumers' fetch wait in every benchmark run (hookd's and the floor's)


class Child:
    """A child process in its own process group (Ctrl-C at the terminal reaches only us;
    we stop children in order), SIGTERMed by Linux should we die without cleaning up."""

    def __init__(self, name: str, argv: Sequence[str], *, log: Path | None = None,
                 pipe: bool = False, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.log = log
        self._files: list[IO[bytes]] = []
        self._stopped = False
        logfile: int | IO[bytes] = subprocess.DEVNULL
        if log is not None:
            logfile = open(log, "ab")  # noqa: SIM115 - closed in stop()
            self._files.append(logfile)
        self.proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe else logfile,
            stderr=logfile if pipe else subprocess.STDOUT,
            env={**os.environ, **(env or {})}, cwd=cwd or REPO, start_new_session=True,
            preexec_fn=parent_death_signal())
        CHILDREN.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def json_line(self, timeout: float = 30.0) -> dict[str, Any]:
        """The first stdout line that is a JSON object (the child's 'I am up' line)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.name} exited (code {self.proc.poll()}) "
                                   "before saying it was up")
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict):
                    return doc
        raise TimeoutError(f"{self.name} did not start within {timeout}s")

    def send(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """SIGTERM the group, SIGKILL after `timeout`; returns the exit code. Only the first
        call acts (and takes the child off CHILDREN); later ones return the exit code."""
        if self._stopped:
            return self.proc.returncode
        if self.alive():
            self.send(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send(signal.SIGKILL)
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything it left in its group
        for fh in [*self._files, self.proc.stdout]:
            if fh is not None:
                with contextlib.suppress(OSError):
                    fh.close()
        self._stopped = True
        with contextlib.suppress(ValueError):
            CHILDREN.remove(self)
        return self.proc.returncode


CHILDREN: list[Child] = []  # started and not yet stopped, oldest first


def stop_children() -> None:
    """Stop every child not stopped yet, newest first (hookd before the broker)."""
    while CHILDREN:
        CHILDREN.pop().stop()


def proc_status(pid: int, field_name: str) -> int:
    """A kB figure from /proc/PID/status (VmRSS = RSS, VmHWM = peak RSS); 0 once it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int, which: str = "both") -> float:
    """CPU time of a process: user, system or both."""
    with contextlib.suppress(OSError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        user, system = int(fields[11]), int(fields[12])
        ticks = {"user": user, "system": system}.get(which, user + system)
        return ticks / os.sysconf("SC_CLK_TCK")
    return 0.0


def http_json(url: str, *, method: str = "GET", timeout: float = 5.0) -> tuple[int, Any]:
    """GET (or POST) a JSON document from 127.0.0.1; (0, None) when nothing answers."""
    assert url.startswith("http://127.0.0.1:"), url  # loopback only, always
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        with contextlib.suppress(ValueError):
            return exc.code, json.loads(exc.read() or b"null")
        return exc.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def wait_ready(health_port: int, timeout: float = 60.0, child: Child | None = None
               ) -> dict[str, Any]:
    """Poll hookd's /readyz until 200 (it holds partitions)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise RuntimeError(f"hookd exited with code {child.proc.returncode}; see {child.log}")
        status, body = http_json(f"http://127.0.0.1:{health_port}/readyz", timeout=2)
        if status == 200:
            return dict(body)
        time.sleep(0.1)
    raise TimeoutError(f"hookd not ready within {timeout}s")


def start_receiver(workdir: Path, *args: str, name: str = "receiver"
                   ) -> tuple[Child, dict[str, Any]]:
    child = Child(name, [PY, "-m", "bench.receiver", *args], pipe=True,
                  log=workdir / f"{name}.err")
    return child, child.json_line()


def receiver_stats(port: int) -> dict[str, Any]:
    status, body = http_json(f"http://127.0.0.1:{port}/__stats", timeout=10)
    if status != 200:
        raise RuntimeError(f"receiver on {port} did not answer /__stats")
    return dict(body)


def write_config(folder: Path, *, bootstrap: str, topic: str, group: str, hooks: list[Any],
                 health_port: int, overrides: Mapping[str, Any] | None = None,
                 **delivery: Any) -> Path:
    """A main config for a benchmark run (loopback allowed, fast consumer timings).

    `delivery` goes into the `delivery` section; `overrides` is merged into the whole
    config last (mappings key by key, anything else replaced)."""
    folder.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "kafka": {"bootstrap_servers": [bootstrap], "topics": [topic], "group_id": group,
                  "dead_letter_topic": f"{topic}.dlq",
                  "retry_topic_prefix": f"{topic}.retry", "retry_replication": 1,
                  "consumer": {"session_timeout": "6s", "heartbeat_interval": "500ms",
                               "fetch_max_wait": f"{FETCH_WAIT_MS}ms", "commit_interval": "500ms"}},
        "delivery": {"allow_networks": ["127.0.0.0/8"], "timeout": "5s", **delivery},
        "health": {"listen": f"127.0.0.1:{health_port}"},
        "logging": {"level": "info", "format": "json"},
        "shutdown_timeout": "10s",
        "hooks": hooks,
    }
    path = folder / "hookd.yaml"
    path.write_text(yaml.safe_dump(_merged(config, overrides or {}), sort_keys=False))
    return path


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def bench_hooks(base: str, count: int = 3, events: str | list[str] = "*",
                prefix: str = "") -> list[dict[str, Any]]:
    """Three hooks in the three styles hookd supports: a Jinja2 JSON body (signed, bearer),
    the payload as JSON (signed with two keys, api key) and a legacy ${field} body (basic
    auth). Each carries the event's send time for the latency measurement."""
    stamp = {"x-sent-at": "{{ sent_at }}"}
    styles: list[dict[str, Any]] = [
        {"id": f"{prefix}crm", "event": events,
         "request": {"url": base + "/crm/{{ event|lower|replace(':', '-') }}",
                     "headers": stamp,
                     "body": '{"event": {{ event|tojson }}, "id": {{ id|tojson }}, '
                             '"time": {{ time|tojson }}, "call": {{ meta.key|tojson }}, '
                             '"domain": {{ domain|tojson }}, "offset": {{ meta.offset }}}'},
         "auth": {"type": "bearer", "token": "crm-token-0123456789"},
         "signing": {"secret": WHSEC_A}},
        {"id": f"{prefix}analytics", "event": events,
         "request": {"url": base + "/analytics", "headers": stamp},
         "auth": {"type": "api_key", "value": "analytics-key-0123456789"},
         "signing": {"secret": [WHSEC_B, WHSEC_A]}},
        {"id": f"{prefix}legacy", "event": events,
         "request": {"url": base + "/legacy", "headers": stamp,
                     "raw_body": '{"event": "${event}", "id": "${id}", "time": "${time}"}'},
         "auth": {"type": "basic", "username": "hookd", "password": "legacy-pass-0123"}},
    ]
    return styles[:count]


def other_hooks(count: int, base: str) -> list[dict[str, Any]]:
    """Hooks that never match the simulated traffic, as a multi-tenant install has them:
    half on the same event names but for other tenants (a `domain` filter), half on other
    events (custom names, and one in ten a glob)."""
    names = ["Joined", "Offering", "Answered", "Bridged", "Leaving", "Call:Hangup",
             "Call:Reporting", "WorkItemClosed"]
    hooks = []
    for i in range(count):
        if i % 2 == 0:
            hooks.append({"id": f"tenant-{i}", "event": names[i % len(names)],
                          "filter": {"domain": f"tenant-{i}"},
                          "request": {"url": f"{base}/tenant/{i}",
                                      "body": '{"id": {{ id|tojson }}}'}})
        else:
            event = f"X{i}:*" if i % 10 == 1 else f"CUSTOM->tenant{i}::event"
            hooks.append({"id": f"custom-{i}", "event": event,
                          "request": {"url": f"{base}/custom/{i}"}})
    return hooks


def percentiles(latencies: list[float]) -> dict[str, Any]:
    """p50/p90/p99/max in ms of latencies in seconds (NaN for none)."""
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return {"p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99), "max_ms": pct(1.0),
            "samples": len(ordered)}
