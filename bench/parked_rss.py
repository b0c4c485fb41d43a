"""Memory with many parked deliveries: hookd's RSS with 0 and with N records in its retry
topics (due in an hour), after it has taken its partitions and settled.

Parked deliveries live in Kafka, not in hookd: the retry consumer pauses each tier
partition at its head until due, so RSS should not grow with N.

    python -m bench.parked_rss [--parked 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer

from bench.common import PY, Child, proc_status, wait_ready, write_config
from hookd.dev.broker import DevBroker, create_topic, free_port
from hookd.events.decode import Event, Meta
from hookd.kafka.parking import Parked, tier_topic


def _config(folder: Path, bootstrap: str, prefix: str, health: int) -> Path:
    """One hook to a closed port, retries parked for an hour in `{prefix}.retry` tiers."""
    return write_config(
        folder, bootstrap=bootstrap, topic=f"{prefix}.events", group=f"{prefix}-g",
        hooks=[{"id": "crm", "event": "*", "request": {"url": "http://127.0.0.1:9/x"}}],
        health_port=health, retry={"schedule": ["1h"], "inline_max": "10s"},
        overrides={"kafka": {"retry_topic_prefix": f"{prefix}.retry", "retry_replication": 1,
                             "consumer": {"session_timeout": "2s",
                                          "heartbeat_interval": "200ms"}},
                   "logging": {"level": "warning"}})


async def _park(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50,
                                max_batch_size=1 << 20)
    await producer.start()
    due = time.time() + 3600
    try:
        pending = []
        for i in range(count):
            meta = Meta("bench.events", i % 4, i, f"call-{i % 5000}")
            event = Event("Answered", f"e{i}", {"event": "Answered", "id": f"e{i}",
                                                "queue_id": 7, "agent_name": "Dana Ortiz",
                                                "member_call_id": f"m-{i}"}, meta)
            parked = Parked("crm", event, meta.key.encode() if meta.key else None, 1, time.time(),
                            due, {"kind": "http_status", "status": 503, "message": "HTTP 503"})
            pending.append(await producer.send(topic, parked.to_json(), key=parked.key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def measure(parked: int, workdir: Path) -> int:
    """Peak-settled RSS (KiB) of a hookd whose retry topics hold `parked` deliveries."""
    prefix = f"p{parked}"
    with DevBroker(workdir / f"broker-{parked}") as broker:
        asyncio.run(create_topic(broker.bootstrap, f"{prefix}.events", 4))
        asyncio.run(create_topic(broker.bootstrap, tier_topic(f"{prefix}.retry", 3600), 4))
        if parked:
            asyncio.run(_park(broker.bootstrap, tier_topic(f"{prefix}.retry", 3600), parked))
        health = free_port()
        cfg = _config(workdir / prefix, broker.bootstrap, prefix, health)
        hookd = Child("hookd", [PY, "-m", "hookd", "run", "-c", str(cfg)],
                      log=workdir / f"hookd-{parked}.log")
        try:
            state = wait_ready(health, child=hookd)
            peak = 0
            for _ in range(20):  # 10 s: the retry consumer fetches, finds heads not due, pauses
                if not hookd.alive():
                    raise RuntimeError(f"hookd exited (code {hookd.proc.returncode}); "
                                       f"see {hookd.log}")
                peak = max(peak, proc_status(hookd.pid, "VmRSS"))
                time.sleep(0.5)
            assert state["config"]["hooks"] == 1
            return peak
        finally:
            hookd.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parked", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hookd-parked-") as tmp:
        base = measure(0, Path(tmp))
        loaded = measure(args.parked, Path(tmp))
    print(f"hookd RSS, retry topics empty:            {base / 1024:7.1f} MB")
    print(f"hookd RSS, {args.parked:,} deliveries parked: {loaded / 1024:7.1f} MB "
          f"({(loaded - base) / 1024:+.1f} MB)")


if __name__ == "__main__":
    main()
