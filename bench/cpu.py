"""CPU per delivery, with Kafka left out and nothing else in the process: a figure this
shared machine cannot blur.

hookd's dispatcher runs here as the daemon runs it: the benchmark's three hooks, the real
HTTP client and the JSON log line per delivery (to a file), a parking lot for retries,
the receiver in its own process. What it does not run is the consumer: the records come
from the simulator, already in memory, in fetches of 200. With `--blackhole` a fourth hook
points at an endpoint whose circuit is open, so each event also parks one delivery (to an
in-memory producer that acks at once). With `--others 997` the config also holds row 6's
997 hooks that never match. With `--outcomes` the delivery log is on: each delivery (and
parking) also writes its outcome record through hookd's BatchedProducer, over an in-memory
producer that fills real aiokafka batches and acks each at once.

Two figures:
- CPU µs per healthy delivery (`time.process_time`), which moves with the machine;
- with `--callgrind`, instructions per healthy delivery: the run is made twice under
  valgrind's callgrind, with `--events` and with 4 times `--events`, and the difference is
  divided by the extra deliveries, so start-up cancels out (both runs simulate the same
  records: making them is not hookd's work, and was counted in it before 2026-12-07).
  The same code gives the same count within a few tenths of a percent (the receiver's
  timing decides how many loop iterations run).

    python -m bench.cpu [--events 6000] [--blackhole] [--outcomes] [--callgrind]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import ConsumerRecord

from bench.common import PY, bench_hooks, other_hooks, start_receiver, stop_children, write_config
from hookd.delivery.retries import ErrorKind, failure
from hookd.delivery.sender import HttpSender
from hookd.dev.sim import Simulator
from hookd.kafka.batching import BatchedProducer
from hookd.kafka.deadletter import DeadLetter
from hookd.kafka.outcomelog import OutcomeLog
from hookd.kafka.parking import ParkingLot
from hookd.pipeline.dispatch import Dispatcher
from hookd.pipeline.runtime import Runtime, load_config, tiers_of
from hookd.service.process import tune_gc
from hookd.telemetry.logs import REDACTOR, configure_logging
from hookd.telemetry.redact import Redactor

FETCH = 200  # records handed to the dispatcher at once, as one fetch
HOLE = "http://127.0.0.1:9"  # never connected to: its circuit is opened before the run


def record(offset: int, key: bytes, value: bytes) -> ConsumerRecord[bytes, bytes]:
    """What aiokafka hands the dispatcher (four partitions, no headers)."""
    return ConsumerRecord("cc.events", offset % 4, offset, int(time.time() * 1000), 0, key,
                          value, None, len(key), len(value), ())


class Producer:
    """Acks every record at once."""

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None,
                            headers: Any = None) -> None:
        return None


class Batches:
    """What BatchedProducer writes with: real aiokafka batches, each acked at once."""

    def __init__(self) -> None:
        self.records = 0

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(16384, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int,
                         ) -> asyncio.Future[None]:
        batch._build()  # what aiokafka's accumulator does before sending: the CPU is real
        self.records += batch.record_count()
        acked = asyncio.get_running_loop().create_future()
        acked.set_result(None)
        return acked

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None,
                            headers: Any = None) -> None:
        return None


class Letters:
    topic = "dlq"

    async def publish(self, letter: DeadLetter) -> None:
        raise RuntimeError(f"dead letter in a clean run: {letter.message}")


async def measure(events: int, warm: int, blackhole: bool, workdir: Path,
                  others: int = 0, built: int = 0, outcomes: bool = False) -> dict[str, Any]:
    _, info = start_receiver(workdir)
    base = f"http://127.0.0.1:{info['port']}"
    hooks = bench_hooks(base) + other_hooks(others, base)
    if blackhole:
        hooks.append({"id": "partner-blackholed", "event": "*",
                      "request": {"url": HOLE + "/hook"}})
    runtime = load_config(write_config(workdir, bootstrap="127.0.0.1:9", topic="cc.events",
                                       group="cpu", hooks=hooks, health_port=9))
    sender = HttpSender(runtime.config.delivery)
    with (workdir / "hookd.log").open("w") as log:
        sys.stdout = log  # the JSON lines go where the daemon's go (stdout), to a file here
        try:
            configure_logging("info", "json")
            REDACTOR.current = Redactor(runtime.secrets)
            await sender.start()
            return await _deliver_all(sender, runtime, events, warm, blackhole, built,
                                      outcomes)
        finally:
            await sender.close()
            sys.stdout = sys.__stdout__


async def _deliver_all(sender: HttpSender, runtime: Runtime, events: int, warm: int,
                       blackhole: bool, built: int = 0, outcomes: bool = False,
                       ) -> dict[str, Any]:
    lot = ParkingLot(Producer(), None, "cc.events.retry", 4, 1)
    await lot.ensure_tiers(tiers_of(runtime))
    if blackhole:
        hole = sender.endpoints.get(HOLE)
        for _ in range(runtime.config.delivery.circuit_breaker.failures):
            hole.circuit.record(failure(ErrorKind.CONNECT, "black hole"), time.monotonic())
        assert sender.unavailable(HOLE) is not None
    batches = Batches()
    dispatcher = Dispatcher(sender, Letters(), lambda: runtime, REDACTOR, lot, outcomes=(
        OutcomeLog(BatchedProducer(batches), "cc.outcomes") if outcomes else None))
    records = [record(i, e.key.encode(), e.encoded(sent_at=time.time()))
               for i, e in enumerate(Simulator(seed=1).take(max(built, warm + events)))]

    async def fetch(batch: list[ConsumerRecord[bytes, bytes]]) -> None:
        finished, left = asyncio.Event(), len(batch)

        def done() -> None:
            nonlocal left
            left -= 1
            if left == 0:
                finished.set()

        for one in batch:
            dispatcher.submit(one, done)
        await finished.wait()

    for at in range(0, warm, FETCH):
        await fetch(records[at:min(at + FETCH, warm)])
    tune_gc()  # as run_daemon() does
    counters = dispatcher.counters
    before, parked, logged = counters.delivered, counters.parked, batches.records
    times, wall = os.times(), time.perf_counter()
    for at in range(warm, warm + events, FETCH):
        await fetch(records[at:at + FETCH])
    after, wall = os.times(), time.perf_counter() - wall
    user, system = after.user - times.user, after.system - times.system
    delivered = counters.delivered - before
    return {"events": events, "delivered": delivered, "parked": counters.parked - parked,
            "cpu_us_per_delivery": round((user + system) / delivered * 1e6, 1),
            "system_us_per_delivery": round(system / delivered * 1e6, 1),
            "deliveries_per_s": round(delivered / wall),
            "outcome_records": batches.records - logged}


def callgrind(args: argparse.Namespace) -> dict[str, Any]:
    """Instructions per healthy delivery: two runs under callgrind, their difference."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt install valgrind)")
    totals, runs = [], []
    with tempfile.TemporaryDirectory(prefix="hookd-cpu-") as tmp:
        for events in (args.events, 4 * args.events):
            out = Path(tmp) / f"callgrind.{events}"
            # both runs simulate the same records (the longer run's), so that making them
            # cancels out with the rest of the set-up: only hookd's work differs
            argv = [PY, "-m", "bench.cpu", "--events", str(events), "--warm", str(args.warm),
                    "--others", str(args.others), "--built", str(args.warm + 4 * args.events),
                    "--json"] + (
                        ["--blackhole"] if args.blackhole else []) + (
                        ["--outcomes"] if args.outcomes else [])
            proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                   *argv], capture_output=True, text=True, check=True)
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            totals.append(next(int(line.split()[1]) for line in out.read_text().splitlines()
                               if line.startswith(("summary:", "totals:"))))
    extra = runs[1]["delivered"] - runs[0]["delivered"]
    return {"instructions_per_delivery": round((totals[1] - totals[0]) / extra),
            "deliveries": [r["delivered"] for r in runs], "blackhole": args.blackhole,
            "others": args.others, "outcomes": args.outcomes}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=6000, help="events measured (3 hooks each)")
    p.add_argument("--warm", type=int, default=1000, help="events run first, not measured")
    p.add_argument("--blackhole", action="store_true", help="a fourth hook, its circuit open")
    p.add_argument("--outcomes", action="store_true",
                   help="the delivery log on: an outcome record per delivery and parking")
    p.add_argument("--others", type=int, default=0,
                   help="hooks that never match, as in row 6 (997 there)")
    p.add_argument("--callgrind", action="store_true",
                   help="count instructions under valgrind (--events 500 is plenty)")
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    p.add_argument("--built", type=int, default=0, help=argparse.SUPPRESS)  # (callgrind's)
    args = p.parse_args(argv)
    if args.callgrind:
        result = callgrind(args)
    else:
        with tempfile.TemporaryDirectory(prefix="hookd-cpu-") as tmp:
            try:
                result = uvloop.run(measure(args.events, args.warm, args.blackhole, Path(tmp),
                                            args.others, args.built, args.outcomes))
            finally:
                stop_children()
    print(json.dumps(result) if args.json else
          "  ".join(f"{k}: {v}" for k, v in result.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
