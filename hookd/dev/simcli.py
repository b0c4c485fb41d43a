"""``hookd-sim`` (``python -m hookd.dev.simcli``): the simulator's traffic, produced to a
Kafka topic.

    hookd-sim --bootstrap 127.0.0.1:9092 --topic cc.events --rate 200 --duration 60
    hookd-sim --dry-run --count 20          # print the events (JSON lines), send nothing

At a set rate each event is made and sent at its moment on the schedule (and stamped
then, with ``--stamp``); the producer lingers 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from hookd.dev.sim import BASE_TIME, Simulator


@dataclass
class _Progress:
    produced: int = 0
    acked: int = 0
    failed: int = 0


def _parse_start(text: str) -> datetime:
    if text == "now":
        return datetime.now(UTC)
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hookd-sim", description="Produce realistic contact-center events to Kafka.")
    p.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    p.add_argument("--topic", default="cc.events")
    p.add_argument("--rate", type=float, default=100.0,
                   help="events per second; 0 = as fast as possible (default 100)")
    p.add_argument("--count", type=int, help="stop after this many events")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--seed", type=int, default=1, help="same seed, same events (default 1)")
    p.add_argument("--concurrency", type=int, default=40, help="calls in progress at once")
    p.add_argument("--start", default=BASE_TIME.isoformat(),
                   help="simulated start time (RFC 3339, or 'now')")
    p.add_argument("--create-topic", type=int, metavar="PARTITIONS", default=0,
                   help="create the topic first with this many partitions")
    p.add_argument("--stamp", metavar="FIELD",
                   help="add FIELD = the send time (epoch seconds) to each event, for latency")
    p.add_argument("--progress", type=float, default=0.0, metavar="SECONDS",
                   help="print a JSON progress line this often (0: only at the end)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the events as JSON lines {key, value} instead of producing")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.count is None and args.duration is None:
        args.count = 1000  # a run is always bounded
    if args.rate < 0 or (args.count is not None and args.count < 0):
        print("hookd-sim: --rate and --count must not be negative", file=sys.stderr)
        return 2
    sim = Simulator(args.seed, concurrency=args.concurrency, start=_parse_start(args.start))
    if args.dry_run:
        out = sys.stdout.buffer
        for i, ev in enumerate(sim.events()):
            if args.count is not None and i >= args.count:
                break
            out.write(orjson.dumps({"key": ev.key, "value": ev.value}) + b"\n")
        out.flush()
        return 0
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    return int(runner(_produce(args, sim)))


async def _produce(args: argparse.Namespace, sim: Simulator, *,
                   clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> int:
    """Produce until the count or duration is reached. `clock` and `sleep` pace the sends
    (injectable, so the pacing can be tested against a simulated clock)."""
    from aiokafka import AIOKafkaProducer

    if args.create_topic:
        from hookd.dev.broker import create_topic

        await create_topic(args.bootstrap, args.topic, args.create_topic)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5, acks=1,
                                max_batch_size=256 * 1024, request_timeout_ms=15000)
    await producer.start()
    progress = _Progress()
    started = clock()
    last_report = started
    pending: list[asyncio.Future[Any]] = []

    def settled(fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            progress.failed += 1
        else:
            progress.acked += 1

    def report(final: bool = False) -> None:
        elapsed = clock() - started
        line = {"produced": progress.produced, "acked": progress.acked,
                "failed": progress.failed, "elapsed": round(elapsed, 3),
                "rate": round(progress.produced / elapsed, 1) if elapsed else 0.0}
        if final:
            line["done"] = True
        sys.stdout.write(orjson.dumps(line).decode() + "\n")
        sys.stdout.flush()

    events = sim.events()
    deadline = started + args.duration if args.duration is not None else math.inf
    try:
        while not stop.is_set():
            now = clock()
            if now >= deadline or (args.count is not None and progress.produced >= args.count):
                break
            if args.rate:
                due = int((now - started) * args.rate) + 1 - progress.produced
                if due <= 0:
                    await sleep(min(0.005, 1 / args.rate))
                    continue
            else:
                due = 500
            if args.count is not None:
                due = min(due, args.count - progress.produced)
            for ev in (next(events) for _ in range(due)):
                value = (ev.encoded(**{args.stamp: time.time()}) if args.stamp
                         else ev.encoded())
                fut = await producer.send(args.topic, value, key=ev.key.encode())
                fut.add_done_callback(settled)
                pending.append(fut)
                progress.produced += 1
            if len(pending) >= 2000:
                await asyncio.gather(*pending, return_exceptions=True)
                pending.clear()
            if not args.rate:
                await asyncio.sleep(0)
            if args.progress and now - last_report >= args.progress:
                last_report = now
                report()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.flush(), 15)
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        await producer.stop()
    report(final=True)
    return 0 if progress.failed == 0 else 1



if __name__ == "__main__":
    sys.exit(main())
