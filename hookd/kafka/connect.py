"""Starting hookd's Kafka clients: all four, in order, or none; waiting for a broker that is
not there yet (no crash loop while it is down), and saying why each try failed."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from aiokafka.errors import KafkaConnectionError, KafkaError

from hookd.config import KafkaConfig
from hookd.kafka.clients import (
    make_admin,
    make_producer,
    make_retry_consumer,
    make_source_consumer,
)

log = structlog.get_logger("hookd.daemon")
_NO_IDEMPOTENCE = ("kafka.idempotence needs Kafka 0.11+ (and IDEMPOTENT_WRITE where ACLs are "
                   "on); set it to false for a broker without it")


async def connect(kafka: KafkaConfig, stop: asyncio.Event) -> dict[str, Any] | None:
    """"source consumer", "retry consumer", "producer", "admin", started in this order
    (stop them in any order at the end); None if `stop` was set before they all started.
    Tries again with a doubling delay (0.5 s up to 30 s)."""
    delay = 0.5
    while not stop.is_set():
        named = {"source consumer": make_source_consumer(kafka),
                 "retry consumer": make_retry_consumer(kafka),
                 "producer": make_producer(kafka), "admin": make_admin(kafka)}
        name = ""
        try:
            for name, client in named.items():  # noqa: B007 - `name` says which failed
                await client.start()
        except Exception as exc:  # KafkaError; also what a client raises by mistake
            # (aiokafka's SCRAM exchange raised KeyError on a refused login): retry
            refused = isinstance(exc, KafkaError) and not isinstance(
                exc, KafkaConnectionError)  # it answered, and said no
            if name == "producer" and kafka.idempotence and refused:
                log.error("the broker refused an idempotent producer, retrying",
                          client=name, error=str(exc), retry_in=delay, hint=_NO_IDEMPOTENCE)
            else:
                log.warning("kafka not reachable, retrying", client=name,
                            error=f"{type(exc).__name__}: {exc}", retry_in=delay)
            for client in named.values():
                with contextlib.suppress(Exception):
                    await stop_client(client)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)
            continue
        return named
    return None


async def stop_client(client: Any) -> None:
    closer = getattr(client, "stop", None) or client.close
    await closer()
