"""The latency floor: what the broker alone costs between produce and consume.

A plain aiokafka consumer with hookd's benchmark settings (same group timings, same fetch
wait, same batch size) that does nothing with a record but note ``now - sent_at``: no
matching, no rendering, no HTTP. Run at the same rate on the same broker as hookd's latency
run, its p50/p99 is the part of hookd's latency that no dispatcher could remove.

    python -m bench.floor --bootstrap 127.0.0.1:PORT --topic T --group G --count N

Prints ``{"ready": true}`` once it has its partitions (produce only then), and at the end
one JSON line: the latencies' percentiles in ms over the records sent from `--skip` seconds
after the first one on (the steady state, as hookd's run measures it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from bench.common import FETCH_WAIT_MS, percentiles


async def run(args: argparse.Namespace) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(args.topic, bootstrap_servers=args.bootstrap,
                                group_id=args.group, enable_auto_commit=False,
                                auto_offset_reset="earliest", session_timeout_ms=6000,
                                heartbeat_interval_ms=500, fetch_max_wait_ms=args.fetch_wait)
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        print(orjson.dumps({"ready": True}).decode(), flush=True)
        sent: list[float] = []
        received: list[float] = []
        deadline = time.monotonic() + args.max_seconds
        idle_since = time.monotonic()
        while len(sent) < args.count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            now = time.time()
            if not batches:
                if sent and time.monotonic() - idle_since > args.idle:
                    break
                continue
            idle_since = time.monotonic()
            for records in batches.values():
                for record in records:
                    sent.append(orjson.loads(record.value)[args.field])
                    received.append(now)
    finally:
        await consumer.stop()
    start = min(sent, default=0.0) + args.skip
    out = percentiles([r - s for s, r in zip(sent, received, strict=True) if s >= start])
    out["records"] = len(sent)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n")[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--count", type=int, required=True, help="stop after this many records")
    p.add_argument("--field", default="sent_at", help="the event field with the send time")
    p.add_argument("--fetch-wait", type=int, default=FETCH_WAIT_MS, help="fetch_max_wait_ms")
    p.add_argument("--skip", type=float, default=2.0,
                   help="leave out records sent in the first SKIP seconds")
    p.add_argument("--idle", type=float, default=3.0,
                   help="stop once nothing came for IDLE seconds")
    p.add_argument("--max-seconds", type=float, default=300.0)
    args = p.parse_args(argv)
    print(orjson.dumps(asyncio.run(run(args))).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
