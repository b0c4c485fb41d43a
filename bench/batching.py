"""CPU per record written to a retry or dead-letter topic: aiokafka's send_and_wait, one
task per record as the dispatcher does, against hookd.kafka.batching.BatchedProducer.

    python -m bench.batching [--records 1000 5000]

Starts a local tansu (hookd.dev.broker) on 127.0.0.1 and prints, for each count, the CPU µs
per record of this process and records/s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import uvloop
from aiokafka import AIOKafkaProducer

from hookd.dev.broker import DevBroker, create_topic
from hookd.kafka.batching import BatchedProducer

VALUE = b'{"v": 1, "hook": "partner", "payload": "' + b"p" * 600 + b'"}'


async def measure(producer: Any, topic: str, count: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(producer.send_and_wait(topic, VALUE, key=b"call-%d" % n,
                                                  headers=[("hookd-hook", b"partner")])
                           for n in range(count)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / count * 1e6, count / wall


async def run(counts: list[int]) -> None:
    broker = DevBroker()
    await asyncio.to_thread(broker.start)
    try:
        await create_topic(broker.bootstrap, "bench.retry", 4)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all",
                                    linger_ms=2)
        await producer.start()
        try:
            await producer.send_and_wait("bench.retry", VALUE)  # metadata, connection
            for count in counts:
                for name, client in (("send_and_wait", producer),
                                     ("BatchedProducer", BatchedProducer(producer))):
                    cpu, rate = await measure(client, "bench.retry", count)
                    print(f"{count:6} records  {name:16} {cpu:7.1f} µs CPU per record  "
                          f"{rate:9,.0f} records/s")
        finally:
            await producer.stop()
    finally:
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.batching")
    p.add_argument("--records", type=int, nargs="+", default=[1000, 5000])
    args = p.parse_args(argv)
    uvloop.run(run(args.records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
